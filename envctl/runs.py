"""Running work in an environment's container: what removing or recreating it would kill.

Observed through the Docker Engine API alone, so that it reads the same through a remote
host's forwarded socket, and sees runs that other users, other machines or plain `docker exec`
started:

- Every exec the engine still runs is listed in the container's inspect `ExecIDs` (the daemon
  drops an exec from that list when its process exits, and clears the list when the container
  restarts). `exec_inspect` gives its `ProcessConfig` (entrypoint and arguments), `Running` and
  the host PID (moby api/swagger.yaml, ExecInspect).
- `envctl exec` starts its entrypoints through a small shell wrapper whose arguments carry a run
  record (entrypoint, start time, log path, who started it) and the path of a file in the
  container where the wrapper writes its own PID before it becomes the entrypoint. Those are read
  back from the exec's arguments and through the archive endpoint (`GET /containers/{id}/archive`).
  `envctl exec --detach` starts its servers through the same wrapper (envctl/detach.py), their
  record marked `detached` with the ports they serve and their readiness.
- Processes that no running exec leads to but that are not the container's keep-alive process
  (a training started with `nohup ... &` in `envctl shell` that outlived the shell) are found
  with `docker top` (procps `ps` on the engine's host), walking each process's parent chain.
  Where the engine's host has no procps `ps` (minimal hosts; `docker top` then fails with
  `"ps": executable file not found`), one short exec reads the container's /proc instead: there,
  an exec's first process has parent 0 (its parent lives outside the container's PID namespace,
  proc(5)) and an orphan left in the background has parent 1, the keep-alive process. That path
  knows no start time for `docker exec`s.

A container that is not running runs nothing. Records of runs whose exec is gone (finished,
killed, or the container restarted) are never reported: only the engine's running execs count.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import socket
import tarfile
import time
import uuid
from dataclasses import asdict, dataclass

from envctl.errors import HostNotReady
from envctl.markers import CLAIM_WRAPPERS

PID_DIR = "/var/lib/envctl/exec"
# $0: the PID file; $1: the run record (read back from the exec's arguments); then the
# entrypoint's argv. Records its PID, then becomes the entrypoint (exec keeps the PID, so
# nothing of the wrapper is left to remove its file when the run ends). Instead each run first
# removes the PID files of runs that ended (no /proc entry for the PID they hold): no second
# exec after a run, and the directory holds the running ones and those ended since the last
# start. A file being written (still empty) names /proc itself and is kept; an unreadable or
# undeletable one (another user's) too, whatever rm says. The removal runs in a subshell: the
# shell that becomes the entrypoint sets no variable of its own (an entrypoint's `f` or `d`,
# exported by `docker exec -e`, reaches it as the run gave it).
WRAPPER = ('mkdir -p "${0%/*}" && (for f in "${0%/*}"/*; do [ -d "/proc/$(cat "$f" 2>/dev/null)" ] || '
           'rm -f "$f" 2>/dev/null || :; done) && echo $$ > "$0" && shift && exec "$@"')
# The wrappers of earlier envctl versions, whose runs may still be running: read as WRAPPER is.
_NAMING_WRAPPER = ('d=${0%/*}; mkdir -p "$d" && for f in "$d"/*; do [ -d "/proc/$(cat "$f" 2>/dev/null)" ] || '
                   'rm -f "$f" 2>/dev/null || :; done && echo $$ > "$0" && shift && exec "$@"')  # set d and f
_PRUNELESS_WRAPPER = 'mkdir -p "${0%/*}" && echo $$ > "$0" && shift && exec "$@"'  # removed its file with a second exec
_OLD_WRAPPER = 'mkdir -p "${0%/*}" && echo $$ > "$0" && exec "$@"'  # envctl before run records
TOP_ARGS = "-o pid,ppid,etimes,stat,args"  # procps `ps`; etimes: seconds since the process started
# Prints, per process: RS pid US /proc/PID/stat US /proc/PID/cmdline (NUL-separated); the
# uptime first. Only shell builtins and cat, which every image envctl runs has (`exec` needs sh).
PROC_SCRIPT = ('cat /proc/uptime; cd /proc && for p in [0-9]*; do [ -r "$p/stat" ] || continue; '
               'printf "\\036%s\\037" "$p"; cat "$p/stat"; printf "\\037"; cat "$p/cmdline"; done 2>/dev/null')
_CLOCK_TICKS = 100  # USER_HZ, the unit of /proc/PID/stat's starttime: 100 on every Linux architecture Docker runs on


@dataclass(frozen=True)
class Run:
    """One piece of work running in a container.

    kind: `entrypoint` (started by `envctl exec` or `envctl shell`), `setup` (a setup step an `up`
    runs under its claim, named by the step), `exec` (a `docker exec`
    started by other means) or `process` (running with no exec behind it: left in the background).
    since: ISO 8601 UTC, or None when the engine's host could not say. pid: in the container
    (envctl runs); host_pid: on the engine's host."""

    kind: str
    name: str
    since: str | None = None
    pid: int | None = None
    host_pid: int | None = None
    log: str | None = None
    by: str | None = None
    exec_id: str | None = None
    step: str | None = None  # kind `setup`: the step's marker name (envctl/markers.py), which its claim bears
    detached: bool = False  # kind `entrypoint`: started by `envctl exec --detach` (envctl/detach.py)
    ports: tuple[int, ...] = ()  # detached: the ports the entrypoint serves, in the container
    ready: str | None = None  # detached: its readiness, described (`GET /health answers 2xx on port 8000`)

    def describe(self) -> str:
        """`train since 2026-11-30 12:03:00 UTC (pid 123, log /ws/logs/train-….log, by ana@box)`."""
        what = {"entrypoint": self.name + (" (detached)" if self.detached else ""), "setup": f"setup step '{self.name}'", "exec": f"docker exec {self.name}", "process": f"process {self.name}"}[self.kind]
        details = []
        if self.ports:
            details.append("serves " + ", ".join(f":{port}" for port in self.ports))
        if self.pid is not None:
            details.append(f"pid {self.pid}")
        elif self.host_pid is not None:
            details.append(f"host pid {self.host_pid}")
        if self.log:
            details.append(f"log {self.log}")
        if self.by:
            details.append(f"by {self.by}")
        since = f" since {self.since.replace('T', ' ').replace('Z', ' UTC')}" if self.since else ""
        return what + since + (f" ({', '.join(details)})" if details else "")

    def as_dict(self) -> dict:
        return asdict(self)

    def key(self) -> tuple:
        """What tells two observations of one run apart from two runs."""
        return self.kind, self.exec_id or self.host_pid or self.pid, self.name


def new_record(entrypoint: str, log: str | None) -> tuple[str, str]:
    """The wrapper's two leading arguments for one run: the PID file path in the container and
    the run record (JSON). `by`: user@machine that started it."""
    record = {"entrypoint": entrypoint, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "log": log,
              "by": f"{_user()}@{socket.gethostname()}"}
    return f"{PID_DIR}/{uuid.uuid4().hex}", json.dumps(record, sort_keys=True)


def _user() -> str:
    try:
        import getpass  # termios with it: only a run record needs the user's name

        return getpass.getuser()
    except (KeyError, OSError):  # a UID without a passwd entry and no $USER (a container, a CI runner)
        return f"uid {os.getuid()}"


def running_work(client, container, attrs: dict | None = None, top: tuple[int, object] | None = None) -> tuple[Run, ...]:
    """The work running in `container` (a docker-py Container, or its ID or name), in start
    order. Empty when it is not running or is gone. `attrs`: the container's inspection
    (ContainerInspect) when the caller holds one taken in this command before any exec of
    envctl's (`status` has docker-py's list's); None: inspected here. `top`: (HTTP status, JSON
    answer) of `GET /containers/{id}/top?ps_args=TOP_ARGS` asked right after that inspection
    (the plan's second round of requests, envctl/observe_engine.py); None: asked here. Raises
    docker.errors.APIError when the engine fails the inspection itself."""
    from docker.errors import NotFound  # here, not at the top: status and plan import this module before any engine

    ident = getattr(container, "id", container)
    if attrs is None:
        try:
            attrs = client.api.inspect_container(ident)
        except NotFound:
            return ()
    if not (attrs.get("State") or {}).get("Running"):
        return ()
    exec_ids = list(attrs.get("ExecIDs") or ())  # read before the /proc exec, which is not work
    processes = _processes(client, ident, top)
    runs, exec_pids = [], set()
    for exec_id in exec_ids:
        try:
            info = client.api.exec_inspect(exec_id)
        except NotFound:
            continue  # ended between the two calls
        if not info.get("Running"):
            continue
        host_pid = info.get("Pid") or None
        exec_pids.add(host_pid)
        run = _exec_run(client, ident, exec_id, info, host_pid, processes)
        if run is not None:
            runs.append(run)
    if processes:
        init = (attrs.get("State") or {}).get("Pid")
        for pid, (ppid, elapsed, command) in sorted(processes.items()):
            if pid == init or _leads_to(pid, exec_pids, processes):
                continue
            runs.append(Run("process", command, _since(elapsed), host_pid=pid))
    else:
        runs += _background_inside(client, ident)
    return tuple(sorted(runs, key=lambda r: r.since or ""))


def _exec_run(client, container: str, exec_id: str, info: dict, host_pid: int | None, processes: dict) -> Run | None:
    config = info.get("ProcessConfig") or {}
    argv = [config.get("entrypoint") or "", *(config.get("arguments") or [])]
    if len(argv) >= 3 and argv[:2] == ["sh", "-c"] and argv[2] in _internal_scripts():
        return None  # another envctl reading the process table or probing a server: not work
    elapsed = processes.get(host_pid, (None, None, None))[1]
    if len(argv) >= 5 and argv[:2] == ["sh", "-c"] and argv[2] in (WRAPPER, _NAMING_WRAPPER, _PRUNELESS_WRAPPER):
        try:
            record = json.loads(argv[4])
        except ValueError:
            record = {}
        if isinstance(record, dict) and record.get("entrypoint"):
            ports = record.get("ports") if isinstance(record.get("ports"), list) else []
            return Run("entrypoint", str(record["entrypoint"]), record.get("since") or _since(elapsed),
                       pid_in_container(client, container, argv[3]), host_pid, record.get("log"), record.get("by"), exec_id,
                       detached=record.get("detached") is True, ports=tuple(p for p in ports if isinstance(p, int)),
                       ready=record.get("ready") if isinstance(record.get("ready"), str) else None)
    if len(argv) >= 6 and argv[:2] == ["sh", "-c"] and argv[2] in CLAIM_WRAPPERS:  # claim, marker, step name, the step's argv
        return Run("setup", argv[5], _since(elapsed), host_pid=host_pid, exec_id=exec_id, step=posixpath.basename(argv[3]))
    if len(argv) >= 4 and argv[:3] == ["sh", "-c", _OLD_WRAPPER]:
        argv = argv[4:]
    command = " ".join(argv)
    return Run("exec", command if len(command) <= 60 else command[:57] + "...", _since(elapsed), host_pid=host_pid,
               exec_id=exec_id)


def _internal_scripts() -> set[str]:
    """The scripts envctl runs for itself in a container (with `sh -c`): never work."""
    from envctl import detach, readiness  # they use this module

    return {PROC_SCRIPT, *readiness.PROBES, *detach.SCRIPTS}


def pid_in_container(client, container: str, pid_file: str) -> int | None:
    """The PID the wrapper wrote at `pid_file`, read through the engine (no exec, no shell
    needed); None when it is not there (yet)."""
    from docker.errors import DockerException  # docker-py's, imported with the engine's first use

    try:
        stream, _stat = client.api.get_archive(container, pid_file)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile(archive.getmembers()[0])
            return int(member.read().decode().strip())
    except (DockerException, tarfile.TarError, IndexError, AttributeError, ValueError):
        return None  # not written yet (the run is starting), or removed: the rest still names the run


def _processes(client, container: str, asked: tuple[int, object] | None = None) -> dict[int, tuple[int, int | None, str]]:
    """Host PID → (parent PID, seconds running, command line) of every process in the container;
    empty when the engine's host cannot list them (`ps` missing or not procps). `asked`: the
    (status, answer) of the same request sent earlier (running_work's `top`)."""
    from docker.errors import APIError  # docker-py's, imported with the engine's first use

    status, top = asked if asked is not None else (0, None)
    if status >= 400:
        return {}  # what docker-py raises APIError for
    if status != 200 or not isinstance(top, dict):  # not asked, or the round did not answer
        try:
            top = client.api.top(container, ps_args=TOP_ARGS)
        except APIError:
            return {}
    titles = top.get("Titles") or []
    try:
        pid_at, ppid_at, elapsed_at, stat_at = (titles.index(t) for t in ("PID", "PPID", "ELAPSED", "STAT"))
    except ValueError:
        return {}
    found = {}
    for row in top.get("Processes") or ():
        try:
            if "Z" in row[stat_at]:
                continue  # a zombie: already dead, nothing to lose
            found[int(row[pid_at])] = (int(row[ppid_at]), int(row[elapsed_at]), row[-1])
        except (ValueError, IndexError):
            continue
    return found


def _background_inside(client, container: str) -> list[Run]:
    """Processes an orphan's parent chain leads to the keep-alive process (PID 1) with, read from
    the container's /proc by one exec; empty when the container cannot run it."""
    from docker.errors import DockerException  # docker-py's, imported with the engine's first use

    try:
        exec_id = client.api.exec_create(container, ["sh", "-c", PROC_SCRIPT], stdout=True, stderr=False)["Id"]
        output = client.api.exec_start(exec_id)
    except (DockerException, KeyError):
        return []
    text = output.decode("utf-8", "replace")
    head, _, body = text.partition("\x1e")
    try:
        uptime = float(head.split()[0])
    except (ValueError, IndexError):
        uptime = None
    table = {}
    for record in body.split("\x1e"):
        pid, _, rest = record.partition("\x1f")
        stat, _, cmdline = rest.partition("\x1f")
        # stat: `pid (comm) state ppid ... starttime` (field 22); comm may hold spaces and ')'.
        comm_end = stat.rfind(")")
        fields = stat[comm_end + 2:].split()
        try:
            state, ppid, started = fields[0], int(fields[1]), int(fields[19])
        except (ValueError, IndexError):
            continue
        if state == "Z" or not pid.isdigit():
            continue
        command = cmdline.replace("\0", " ").strip() or stat[stat.find("(") + 1:comm_end]
        elapsed = int(uptime - started / _CLOCK_TICKS) if uptime is not None else None
        table[int(pid)] = (ppid, elapsed, command)
    found = []
    for pid, (ppid, elapsed, command) in sorted(table.items()):
        if pid != 1 and _leads_to(pid, {1}, table):
            found.append(Run("process", command, _since(elapsed), pid=pid))
    return found


def _leads_to(pid: int, exec_pids: set, processes: dict) -> bool:
    """Whether `pid` is a running exec's process or one of its descendants."""
    seen = set()
    while pid in processes and pid not in seen:
        if pid in exec_pids:
            return True
        seen.add(pid)
        pid = processes[pid][0]
    return pid in exec_pids


def _since(elapsed: int | None) -> str | None:
    if elapsed is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - elapsed))


def blocker(container_name: str, runs: tuple[Run, ...], verb: str) -> str:
    """The message that stops `up` or `down`: `recreating envctl-x would kill running work: …`."""
    listed = "; ".join(r.describe() for r in runs)
    return f"{verb} {container_name} would kill running work: {listed}; `--force` to do it anyway"


class RunningWork(HostNotReady):
    """Removing or recreating a container would kill work running in it (exit 5, as every
    blocker)."""

    def __init__(self, container_name: str, runs: tuple[Run, ...], verb: str, command: str):
        servers = sorted({run.name for run in runs if run.detached})  # they never finish by themselves
        stops = ", ".join(f"`envctl stop {name} --env {container_name}`" for name in servers)
        first = (f"stop the detached server(s) ({stops})" if servers else
                 "wait for it to finish (`envctl status` lists it)")
        super().__init__(blocker(container_name, runs, verb), hint=f"{first}, or `{command} --force`")
        self.runs = runs


def refuse_running_work(client, container, container_name: str, verb: str, command: str, force: bool) -> tuple[Run, ...]:
    """Raise RunningWork when work runs in `container`, unless `force`; return that work (what
    a forced removal stops). `verb`: `recreating` | `removing`; `command`: what to add --force to."""
    work = running_work(client, container)
    if work and not force:
        raise RunningWork(container_name, work, verb, command)
    return work


def refuse_unplanned(client, container, container_name: str, accepted: tuple[Run, ...], verb: str = "recreating") -> None:
    """Right before `up` removes `container` to recreate it (or restarts it): raise RunningWork when work runs in
    it that the plan did not accept to stop (`accepted`: the plan's --force list), such as a run
    started after the plan was made."""
    keys = {run.key() for run in accepted}
    unplanned = tuple(run for run in running_work(client, container) if run.key() not in keys)
    if unplanned:
        error = RunningWork(container_name, unplanned, verb, "envctl up")
        error.hint = "it started after the plan was made, or the plan was made without --force: run `envctl plan` again"
        raise error
