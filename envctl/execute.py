"""`exec`: run a manifest entrypoint in its environment's container.

The Docker CLI runs it (`docker exec`), because it already does what a user expects of a
terminal: a TTY when interactive, output streamed live, the process's exit code returned.
What it does not do without a TTY is pass Ctrl-C on, so envctl records the process's PID
inside the container and delivers SIGINT/SIGTERM itself. Output of non-interactive runs is
also written to the environment's workspace on the host, so it outlives the container.

On an SSH host a non-interactive run goes through that host's own docker CLI, in one command
over the master connection (run_on_host), rather than through this machine's docker CLI and the
forwarded engine socket, where each of its engine requests is a round trip; a host without a
docker CLI, and runs with a terminal, take the forwarded socket.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from envctl import interrupts, runs
from envctl.errors import EnvctlError, EXIT_USAGE, HostNotReady
from envctl.masking import StreamMask

if TYPE_CHECKING:  # imported by the plan's own use: `exec --host` imports it while it lists the host's environments
    from envctl.plan import Entrypoint


@dataclass(frozen=True)
class Invocation:
    container: str
    argv: tuple[str, ...]
    env: dict[str, str]
    workdir: str | None
    tty: bool
    log_file: Path | None
    name: str = "shell"  # the entrypoint, as the run record names it (envctl/runs.py)
    masked: tuple[str, ...] = field(default=(), repr=False)  # values masked in the output and log (passed secrets)


def apply_overrides(entry: Entrypoint, sets: list[str], extra: list[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The entrypoint's argv and environment with `--set key=value` and `-- extra args`."""
    env = dict(entry.env)
    declared = {k.lower() for k in entry.params}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EnvctlError(f"--set {item!r}: write --set key=value", exit_code=EXIT_USAGE)
        if key.lower() not in declared:
            close = difflib.get_close_matches(key.lower(), sorted(declared), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = ", ".join(sorted(declared)) or "none"
            raise EnvctlError(f"entrypoint {entry.name} has no parameter '{key}'{hint}; parameters: {known}", exit_code=EXIT_USAGE)
        env[key.upper()] = value
    argv = entry.argv
    if extra and entry.shell_line:
        # Appended to the shell line quoted, so that each argument stays one word.
        argv = argv[:-1] + (argv[-1].rstrip("\n") + " " + shlex.join(extra),)
    elif extra:
        argv = argv + tuple(extra)
    return argv, env


def run(invocation: Invocation, environ: Mapping[str, str] | None = None, log_writer=None) -> int:
    """Run and return the entrypoint's exit code (128+N when a signal N ended it). `log_writer`:
    where the output is kept instead of `invocation.log_file` (a stream to a remote host's
    workspace); closed here."""
    docker = shutil.which("docker")
    if docker is None:
        raise HostNotReady("the docker command is not installed on this machine; envctl exec runs through it",
                           hint="install the Docker CLI (Debian/Ubuntu: apt-get install docker.io)")
    # The run record travels in the exec's arguments, where `envctl status` and the plan's
    # running-work check read it back through the engine (envctl/runs.py).
    pid_file, record = runs.new_record(invocation.name, str(invocation.log_file) if invocation.log_file else None)
    args = [docker, *_exec_arguments(invocation, pid_file, record)]
    # Values travel in the child's environment, not on its command line (where `ps` shows them).
    child_env = dict(os.environ if environ is None else environ)
    child_env.update(invocation.env)
    if invocation.tty:
        # The terminal delivers Ctrl-C to the process through the TTY.
        return subprocess.call(args, env=child_env)

    def forward(signum: int) -> None:
        subprocess.run([docker, "exec", invocation.container, "sh", "-c", _signal_script(signum, pid_file)],
                       env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    log = _open_log(invocation, log_writer)
    try:
        # A session of its own: Ctrl-C reaches envctl only, which forwards it into the container.
        child = subprocess.Popen(args, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        return _stream(child, invocation, forward, log)[0]
    finally:
        if log is not None:
            log.close()


def _exec_arguments(invocation: Invocation, pid_file: str, record: str) -> list[str]:
    """`exec -i [-t] [-w DIR] -e NAME... CONTAINER sh -c WRAPPER PID_FILE RECORD ARGV...`: the
    docker CLI's arguments after `docker`; the variables by name only (their values come from
    the CLI's own environment)."""
    args = ["exec", "-i"]
    if invocation.tty:
        args.append("-t")
    if invocation.workdir:
        args += ["-w", invocation.workdir]
    for key in invocation.env:
        args += ["-e", key]
    return args + [invocation.container, "sh", "-c", runs.WRAPPER, pid_file, record, *invocation.argv]


# Run on an SSH host by HostSession: started before the run is known, it waits on stdin for its
# arguments, a line `=ESCAPED` each (ESCAPED: printf %b's \0ooo for every byte but letters,
# digits and _), then a line `.`: the engine's socket, the log there ('' for none), then the
# docker CLI's arguments; then the variables, a line `NAME ESCAPED` each, then an empty line.
# Stdin closed before them: nothing runs. `read` takes stdin a byte at a time, so nothing after
# those lines is consumed; the entrypoint itself reads /dev/null, as a local run does. The docker
# CLI's path is found before any variable is set and kept among the arguments, and the variables
# are read and exported by the process that then becomes the docker CLI (`take`, a subshell of its
# own when the log is written): the entrypoint's variables are the docker CLI's environment and
# the container's, never this script's own (an entrypoint's `d`, `log` or PATH would otherwise
# change what runs here, its LD_PRELOAD reach mkdir and tee). `take`'s own two names
# (SCRIPT_NAMES) are the one clash left: a run with one of them takes the forwarded socket.
# A variable this host's sh cannot set (bash as sh: UID, EUID, PPID, SHELLOPTS are read-only
# there, and setting one ends the script): each is first tried in a subshell, and one that fails
# says UNSETTABLE on stderr and exits 127 before the docker CLI starts, as NO_DOCKER does.
# No docker CLI on the host: exit 127 with NO_DOCKER on stderr, before anything
# ran (the caller takes the forwarded socket instead). The log is appended to by tee as the
# output passes (unbuffered); the docker CLI's exit code comes back through fd 3 (POSIX sh has
# no pipefail). A log that cannot be written leaves the run without one, as the log stream from
# this machine does (`true >> LOG`, not `: >> LOG`: a failed redirection on the special
# built-in `:` ends a POSIX sh, dash and busybox both, and the run with it).
# Its first line out, and on stderr, is BEGINS: what comes before it is the host's login shell's
# (a .bashrc that prints), not the run's, and is dropped.
NO_DOCKER = "envctl: no docker command on this host"
UNSETTABLE = "envctl: this host's sh cannot set the variable"
BEGINS = b"envctl: the run's output begins\n"
SCRIPT_NAMES = frozenset({"envctl_k_", "envctl_v_"})
ON_HOST = ('echo "' + BEGINS.decode().strip() + '"; echo "' + BEGINS.decode().strip() + '" >&2\n'
           'd=$(command -v docker) || { echo "' + NO_DOCKER + '" >&2; exit 127; }\n'
           'set --; while IFS= read -r a && [ "$a" != . ]; do a=$(printf "%bx" "${a#=}"); set -- "$@" "${a%x}"; done\n'
           '[ "$#" -gt 2 ] || exit 0\n'
           'DOCKER_HOST=unix://$1; export DOCKER_HOST; log=$2; shift 2; set -- "$d" "$@"\n'
           'take() { while IFS=" " read -r envctl_k_ envctl_v_ && [ -n "$envctl_k_" ]; do '
           'envctl_v_=$(printf "%bx" "$envctl_v_"); ( export "$envctl_k_=" ) 2>/dev/null || '
           '{ echo "' + UNSETTABLE + ' $envctl_k_" >&2; exit 127; }; export "$envctl_k_=${envctl_v_%x}"; done; '
           'exec "$@" </dev/null 2>&1; }\n'
           '[ -n "$log" ] && { mkdir -p -- "${log%/*}" && true >> "$log"; } 2>/dev/null || take "$@"\n'
           'exec 4>&1\n'
           'rc=$( { { ( take "$@" ); echo $? >&3; } | tee -a -- "$log" >&4; } 3>&1 )\n'
           'exit "${rc:-1}"')
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class HostSession:
    """A command on an SSH host (envctl/hosts/ssh.py SSHHost), started over its master connection
    before the run is known, so that opening its channel (a round trip) and starting ssh here
    overlap the listing and the plan; run_on_host then hands it the run. Nothing runs there
    until then: `abandon` (also at exit) ends it unused."""

    def __init__(self, host):
        import atexit

        self.host = host
        self.errors = tempfile.TemporaryFile()
        # reads_only: nothing runs before the arguments, which come after every read of the plan.
        command = host.connection.command(["sh", "-c", ON_HOST], reads_only=True)
        from envctl.remote import command_log

        command_log.session(command)  # the run's, not a read of the plan
        # A session of its own: Ctrl-C reaches envctl only, which forwards it into the container.
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                        start_new_session=True)
        atexit.register(self.abandon)

    def abandon(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # the channel closes: the script there reads the end of its stdin and exits
            self.process.wait()
        self.errors.close()


def run_on_host(invocation: Invocation, session: HostSession, log_writer=None) -> int | None:
    """Run a non-interactive entrypoint on an SSH host through the host's own docker CLI, in the
    command `session` started there: what a user would type (`ssh HOST docker exec ...`), and
    one round trip where the docker CLI here, through the forwarded socket, makes one per
    engine request. Returns its exit code as `run` does, or None, having run nothing (and left
    `log_writer` open), when it cannot go this way: a terminal is wanted (values would cross the
    terminal's echo), a variable's name is no shell name or one of the host script's own
    (SCRIPT_NAMES) or one the host's sh cannot set, or the host has no docker CLI; the caller
    then calls `run` with the forwarded socket. `session` is used up either way.

    The log (`invocation.log_file`, a path on the host): written through `log_writer` (the
    masked output, from here) when one is given, which it must be when values are masked;
    else by the command itself on the host, as the output passes (no session of its own).

    Values never reach a command line: they cross the SSH channel on the command's stdin and
    reach the docker CLI there in its environment (`-e NAME`), as `run` hands them here."""
    if not runs_on_host(invocation):
        session.abandon()
        return None
    host = session.host
    try:
        return run_in_session(invocation, session.process, session.errors, host.docker_socket,
                              lambda argv: host.connection.run(argv, timeout=60), log_writer)
    finally:
        session.abandon()


def runs_on_host(invocation: Invocation) -> bool:
    """Whether run_on_host can take `invocation` (see there): no terminal, every variable's name
    a shell name that neither the docker CLI (DOCKER_HOST) nor the host script (SCRIPT_NAMES)
    uses."""
    return (not invocation.tty and all(_SHELL_NAME.fullmatch(key) for key in invocation.env)
            and "DOCKER_HOST" not in invocation.env and SCRIPT_NAMES.isdisjoint(invocation.env))


def run_in_session(invocation: Invocation, child: subprocess.Popen, errors, docker_socket: str, run_there,
                   log_writer=None, before_output=None) -> int | None:
    """run_on_host's run, in `child`: an ssh process started with ON_HOST as its command (stdin,
    stdout piped; stderr to the file `errors`), nothing sent to it yet. `docker_socket`: the
    engine's socket on the host; `run_there(argv)`: runs a command on the host (Ctrl-C and
    SIGTERM reach the run through one); `before_output()`: called once before the run's first
    byte reaches stdout or stderr, never when nothing ran. Returns as run_on_host does; `child`
    is waited for unless None is returned early, and the caller ends it in any case."""
    if invocation.masked and invocation.log_file is not None and log_writer is None:
        raise ValueError("run_on_host: a run whose output is masked needs its log_writer")
    pid_file, record = runs.new_record(invocation.name, str(invocation.log_file) if invocation.log_file else None)
    there = str(invocation.log_file) if invocation.log_file is not None and log_writer is None else ""
    arguments = [docker_socket, there, *_exec_arguments(invocation, pid_file, record)]
    header = "".join(f"={_escaped(argument)}\n" for argument in arguments) + ".\n"
    header += "".join(f"{key} {_escaped(value)}\n" for key, value in invocation.env.items()) + "\n"

    def forward(signum: int) -> None:
        run_there(["env", f"DOCKER_HOST=unix://{docker_socket}", "docker", "exec", invocation.container,
                   "sh", "-c", _signal_script(signum, pid_file)])

    try:
        child.stdin.write(header.encode())
        child.stdin.close()
    except BrokenPipeError:
        pass  # ssh ended already (no docker CLI there, a lost connection): its status and message say why
    code, printed = _stream(child, invocation, forward, log_writer, after=BEGINS,  # never a file here: the log is the host's
                            before_output=before_output)
    errors.seek(0)
    said = errors.read()
    _junk, begun, after = said.partition(BEGINS)
    said = after if begun else said  # before it: the login shell's; none: ssh's own words alone
    if code == 127 and not printed and (NO_DOCKER.encode() in said or UNSETTABLE.encode() in said):
        return None  # nothing ran; the log is the caller's still
    if log_writer is not None:
        log_writer.close()
    if said:  # ssh's own words (a lost connection); the entrypoint's stderr came with its stdout
        if before_output is not None and not printed:
            before_output()
        sys.stderr.buffer.write(said)
        sys.stderr.flush()
    return code


def _signal_script(signum: int, pid_file: str) -> str:
    """The shell line that sends `signum` to the run whose wrapper wrote `pid_file`: to its
    process group, as a terminal sends Ctrl-C (an exec's process leads its own group), so that
    what a shell line's shell waits on gets it too (the shell alone defers it, or dies of it
    and leaves its command running); to the PID alone where it leads no group."""
    return f'p=$(cat {pid_file}) && {{ kill -{signum} -- "-$p" 2>/dev/null || kill -{signum} "$p"; }}'


def _escaped(value: str) -> str:
    return "".join(chr(b) if b in _PLAIN else f"\\0{b:03o}" for b in value.encode())


def _open_log(invocation: Invocation, log_writer=None):
    if log_writer is None and invocation.log_file is not None:
        invocation.log_file.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered: each chunk reaches the file as it is printed, for `logs -f` in another terminal.
        return open(invocation.log_file, "ab", buffering=0)
    return log_writer


def _stream(child: subprocess.Popen, invocation: Invocation, forward, log=None, after: bytes | None = None,
            before_output=None) -> tuple[int, bool]:
    """Copy `child`'s output to stdout and to `log` as it comes, masked; SIGINT and SIGTERM here
    call `forward(signum)` meanwhile. `after`: what comes up to the first `after` is dropped
    (the output has none: all of it is copied). `before_output()`: called once, before the first
    byte is copied. Returns the child's exit code, and whether it
    printed anything (of what is copied). The PID file the run's wrapper wrote stays: the next
    run removes it (runs.WRAPPER), not a second exec after this one."""
    masker = StreamMask(invocation.masked)  # a passed secret the program prints is masked on screen and in the log
    printed = False
    with interrupts.handled_by(lambda signum, _frame: forward(signum)):
        out = sys.stdout.buffer
        if after is not None:
            before = b""
            while after not in before:
                more = child.stdout.read1(65536)
                if not more:
                    break
                before += more
            _head, found, rest = before.partition(after)
            first = [rest if found else before]  # no `after` (the command never ran): all of it
        else:
            first = []
        chunks = itertools.chain(first, iter(lambda: child.stdout.read1(65536), b""))
        for chunk in itertools.chain(filter(None, chunks), [None]):  # None: the end
            printed = printed or bool(chunk)
            chunk = masker.feed(chunk) if chunk is not None else masker.flush()
            if chunk and before_output is not None:
                before_output()
                before_output = None
            out.write(chunk)
            out.flush()
            if log is not None:
                log.write(chunk)
        return child.wait(), printed


def log_path(workspace: Path, entrypoint: str) -> Path:
    """`WORKSPACE/logs/ENTRYPOINT-20261130T120311Z-3f2a.log`: when the run started (UTC, to the
    second), then four hex digits of its own. Two runs of one entrypoint started in the same
    second (a script starting several evaluations at once) each write their own log: the name
    is chosen here, before the run, and an SSH host's run then writes its log itself, with no
    round trip to look for a free name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return workspace / "logs" / f"{entrypoint}-{stamp}-{os.urandom(2).hex()}.log"


def log_pattern(entrypoint: str | None) -> str:
    """The glob (fnmatch and the host's sh alike) of the logs log_path names for `entrypoint`,
    and of its runs' per-node logs (`train-20261130-120311-TOKEN-node0.log`,
    envctl/multinode/node_logs.py); every entrypoint's for None. The stamp's eight digits are
    spelled out: `train-*.log` would also match the logs of an entrypoint named `train-eval`."""
    return f"{entrypoint}-{'[0-9]' * 8}[T-][0-9]*.log" if entrypoint else "*.log"


def print_file(path: Path, follow: bool, secrets=(), ended=None) -> None:
    """Copy a log to stdout; with `follow`, keep copying what is appended until `ended()` (the
    run writing it has ended, envctl/follow.py) and what it wrote last is copied too, or until
    interrupted when no `ended` is given. The values in `secrets` are masked as they pass
    (envctl.masking.StreamMask: also one split across two reads), for a log that holds them (a
    detached run's, written in the container)."""
    out = sys.stdout.buffer
    masker = StreamMask(secrets)
    draining = False  # the run has ended: read to the end once more, then stop
    with open(path, "rb") as handle:
        while True:
            data = handle.read(65536)
            if data:
                out.write(masker.feed(data))
                out.flush()
                continue
            if not follow or draining:
                out.write(masker.flush())
                out.flush()
                return
            if ended is not None and ended():
                draining = True  # asked after the file's end was reached: what it wrote before ending is read next
                continue
            time.sleep(0.5)
