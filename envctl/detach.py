"""`envctl exec ENTRY --detach`: a server started in its environment's container that outlives
the command, and `envctl stop ENTRY`.

The run is an exec the engine keeps (`docker exec -d`, through the Engine API so that it reads
the same through a remote host's forwarded socket): nothing of envctl stays behind on this
machine, so closing the terminal or the SSH connection does not end it. It starts through the
run-record wrapper of envctl/runs.py (its record marked `detached`), so `status`, `stop` and the
plan's running-work protection know it as any entrypoint run. Its output goes, from inside the
container, to a log file in the environment's workspace (mounted at /envctl), the file `exec`'s
runs write and `envctl logs` reads; the file is made on the host first, by the user running
envctl, so that it is theirs.

Stopping follows docker stop's order: SIGTERM to the run's process group (the engine's runtime
starts each exec as a session and group leader, so the group is the run's PID and takes its
children along), then SIGKILL to the group after the grace period.
"""

from __future__ import annotations

import json
import posixpath
import signal
import time
from dataclasses import dataclass

from envctl import readiness, runs
from envctl.errors import EnvctlError
from envctl.paths import WORKSPACE_TARGET

POLL_SECONDS = 0.5
EMPTY_LOG = "; the log is empty"
LOG_TAIL_LINES = 20
# $0: the log file in the container; then the entrypoint's argv. Same PID all along (exec).
REDIRECT = 'exec >>"$0" 2>&1 </dev/null && exec "$@"'
# $0: signal name; $1: PID. The group first; a run that is not a group leader (an exec started
# by an engine that does not make sessions) by its PID.
SIGNAL_SCRIPT = 'kill -s "$0" -- "-$1" 2>/dev/null || kill -s "$0" "$1"'
ALIVE_SCRIPT = '{ kill -0 -- "-$0" || kill -0 "$0"; } 2>/dev/null && echo alive'
TAIL_SCRIPT = f'tail -n {LOG_TAIL_LINES} "$0" 2>/dev/null || cat "$0"'
WRITABLE_SCRIPT = '[ -w "$0" ] && echo writable; id -u'
SCRIPTS = (SIGNAL_SCRIPT, ALIVE_SCRIPT, TAIL_SCRIPT, WRITABLE_SCRIPT)  # envctl/runs.py does not count these execs as work


class NotReady(EnvctlError):
    """The detached run ended before it was ready, or was not ready in time (exit 1)."""


@dataclass(frozen=True)
class Started:
    exec_id: str
    pid: int | None  # in the container; None when the wrapper never wrote it
    pid_file: str
    log_in_container: str


def in_container(log_on_host: str, workspace: str) -> str:
    """The log's path as the container sees the workspace (mounted at /envctl)."""
    relative = posixpath.relpath(log_on_host, workspace)
    return posixpath.join(WORKSPACE_TARGET, relative)


def check_log_writable(client, container: str, log_in_container: str, log_on_host: str) -> None:
    """Raise EnvctlError when the container's user cannot append to the log (made on the host by
    the user running envctl, mode 0644): the run's output would be lost, and the shell would end
    the run before it started."""
    said = _run_script(client, container, WRITABLE_SCRIPT, log_in_container).split()
    if "writable" not in said:
        uid = said[-1] if said else "?"
        raise EnvctlError(f"the container's user (uid {uid}) cannot write the run's log {log_on_host} "
                          f"({log_in_container} in the container), where a detached run's output goes",
                          hint="run the container as the user that owns the workspace (container.user), or as root")


def start(client, container: str, name: str, argv, env: dict, workdir: str | None, log_on_host: str,
          log_in_container: str, ready: readiness.Readiness | None, ports: tuple[int, ...]) -> Started:
    """Start `argv` detached in `container` (docker-py client or envctl Engine); returns once its
    wrapper wrote its PID (or ended). The record names it `detached`, with its ports and
    readiness, for `status`."""
    pid_file, record = runs.new_record(name, log_on_host)
    fields = json.loads(record)
    fields.update(detached=True, ports=list(ports), ready=ready.describe() if ready else None)
    command = ["sh", "-c", runs.WRAPPER, pid_file, json.dumps(fields, sort_keys=True), "sh", "-c", REDIRECT,
               log_in_container, *argv]
    # The values reach the engine in the exec's configuration, as `docker exec -e` sends them.
    created = client.api.exec_create(container, command, stdout=False, stderr=False, stdin=False, tty=False,
                                     environment=dict(env), workdir=workdir or None)
    exec_id = created["Id"]
    client.api.exec_start(exec_id, detach=True)
    pid = None
    for _ in range(40):  # the wrapper writes its PID at once; an exec that cannot start ends at once
        pid = runs.pid_in_container(client, container, pid_file)
        if pid is not None or not client.api.exec_inspect(exec_id).get("Running"):
            break
        time.sleep(0.05)
    return Started(exec_id, pid, pid_file, log_in_container)


def wait_ready(client, container: str, started: Started, ready: readiness.Readiness, clock=time.monotonic,
               sleep=time.sleep) -> readiness.Listening:
    """Block until `ready` holds; returns the socket that answered (its address, and whether it
    listens on the loopback only). Raises NotReady when
    the run ended first (with its exit code and the log's last lines), or when `ready.timeout`
    seconds passed (after stopping the run)."""
    deadline = clock() + ready.timeout
    last = "nothing listens on it yet"
    while True:
        ended = _exit_code(client, started.exec_id)
        if ended is not None:
            tail = _tail(client, container, started)
            raise NotReady(f"it ended ({ended_by(ended)}) before it was ready ({ready.describe()})" + tail,
                           hint=_ended_hint(ended, empty_log=tail == EMPTY_LOG))
        found = _probe_port(client, container, started.pid, ready.port)
        if found is not None:
            if not ready.http:
                return found
            answer = _probe_http(client, container, f"http://{found.address}:{ready.port}{ready.http}")
            if answer.ok:
                return found
            if answer.tool is None:
                stop(client, container, started.exec_id, started.pid, grace=10)
                raise NotReady(f"cannot ask GET {ready.http}: {answer.describe()}; the run was stopped",
                               hint="declare ready: {port: N} alone, or add curl or wget to the image")
            last = f"port {ready.port} listens; GET {ready.http} {answer.describe()}"
        if clock() >= deadline:
            stopped = stop(client, container, started.exec_id, started.pid, grace=10)
            raise NotReady(f"not ready after {ready.timeout:g}s ({ready.describe()}; last: {last}); {stopped}"
                           + _tail(client, container, started),
                           hint="a server that loads a large model may need more: raise ready.timeout in the manifest")
        sleep(POLL_SECONDS)


def ended_at_once(client, started: Started) -> int | None:
    """The exit code when the run ended right after it started (a missing program), else None."""
    time.sleep(POLL_SECONDS)
    return _exit_code(client, started.exec_id)


def listening_now(client, container: str, work) -> list[dict]:
    """`work` (envctl.runs.Run) as dicts; a detached run's also with `listening`: which of the
    ports it serves a socket of the run listens on now (one exec per detached run), and
    `loopback_only`: which of those it listens on at a loopback address only (readiness.Listening:
    nothing outside the container reaches them), as `status` shows them."""
    out = []
    for run in work:
        shown = run.as_dict()
        if run.detached:
            table = _run_script(client, container, readiness.PORT_SCRIPT) if run.pid is not None and run.ports else ""
            found = {port: readiness.listening(table, port, run.pid) for port in run.ports}
            shown["listening"] = [port for port, socket in found.items() if socket is not None]
            shown["loopback_only"] = [port for port, socket in found.items() if socket is not None and socket.loopback]
        out.append(shown)
    return out


def ended_by(code: int) -> str:
    """`exit code 1`, or `exit code 143: SIGTERM` for a shell's 128+N (the run was signalled:
    `envctl stop` meanwhile, the kernel's OOM killer with SIGKILL...)."""
    if 128 < code < 128 + 65:
        try:
            return f"exit code {code}: {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def _ended_hint(code: int, empty_log: bool = False) -> str:
    if code == 0:
        return ("a server that puts itself in the background (a daemon) ends its first process at once: run it in the "
                "foreground (nginx -g 'daemon off;', --foreground, --no-daemon)")
    if code in (128 + signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGHUP):
        return "it was told to end while starting (`envctl stop`, or a kill in the container); exec --detach it again"
    if code == 128 + signal.SIGKILL:
        return "it was killed (SIGKILL: `envctl stop` after its timeout, or the kernel's out-of-memory killer)"
    if empty_log:
        return "it wrote nothing; run it in the foreground (envctl exec ENTRY, without --detach) to see it fail"
    return "the log's last lines are above; `envctl logs ENTRY` prints all of it"


def _exit_code(client, exec_id: str) -> int | None:
    info = client.api.exec_inspect(exec_id)
    if info.get("Running"):
        return None
    code = info.get("ExitCode")
    return code if isinstance(code, int) else -1


def _run_script(client, container: str, script: str, *args: str) -> str:
    exec_id = client.api.exec_create(container, ["sh", "-c", script, *args], stdout=True, stderr=True)["Id"]
    return client.api.exec_start(exec_id).decode("utf-8", "replace")


def _probe_port(client, container: str, pid: int | None, port: int) -> readiness.Listening | None:
    if pid is None:
        return None
    return readiness.listening(_run_script(client, container, readiness.PORT_SCRIPT, str(pid)), port, pid)


def _probe_http(client, container: str, url: str) -> readiness.HttpAnswer:
    return readiness.http_answer(_run_script(client, container, readiness.HTTP_SCRIPT, url))


def _tail(client, container: str, started: Started) -> str:
    return log_tail(client, container, started.log_in_container)


def log_tail(client, container: str, log_in_container: str) -> str:
    """`; the log's last lines:\\n...` (LOG_TAIL_LINES of them), or `; the log is empty`."""
    text = _run_script(client, container, TAIL_SCRIPT, log_in_container)
    text = "\n".join(text.rstrip("\n").splitlines()[-LOG_TAIL_LINES:])
    return f"; the log's last lines:\n{text}" if text.strip() else EMPTY_LOG


def stop(client, container: str, exec_id: str | None, pid: int | None, grace: float, clock=time.monotonic,
         sleep=time.sleep) -> str:
    """SIGTERM to the run's process group, SIGKILL after `grace` seconds; returns what was done
    (`stopped by SIGTERM after 0.6s`). Raises EnvctlError when the run has no PID to signal."""
    if pid is None:
        raise EnvctlError("the run's PID is not known (its PID file is missing), so it cannot be signalled",
                          hint="stop it from `envctl shell` with kill, or remove the environment with `envctl down --force`")
    began = clock()
    _run_script(client, container, SIGNAL_SCRIPT, "TERM", str(pid))
    while clock() - began < grace:
        if not _alive(client, container, exec_id, pid):
            return f"stopped by SIGTERM after {clock() - began:.1f}s"
        sleep(min(POLL_SECONDS, max(0.05, grace - (clock() - began))))
    if grace <= 0 and not _alive(client, container, exec_id, pid):
        return "stopped by SIGTERM at once"
    _run_script(client, container, SIGNAL_SCRIPT, "KILL", str(pid))
    for _ in range(50):
        if not _alive(client, container, exec_id, pid):
            break
        sleep(0.1)
    if grace <= 0:  # --timeout 0: no grace was waited for, so nothing is claimed about one
        return "killed (SIGKILL) right after SIGTERM (--timeout 0)"
    return f"still running {grace:g}s after SIGTERM: killed (SIGKILL)"


def _alive(client, container: str, exec_id: str | None, pid: int) -> bool:
    """Whether the run or any process of its group still runs."""
    if exec_id is not None and _exit_code(client, exec_id) is None:
        return True
    return _run_script(client, container, ALIVE_SCRIPT, str(pid)).strip() == "alive"
