"""`exec`: run a manifest entrypoint in its environment's container.

The Docker CLI runs it (`docker exec`), because it already does what a user expects of a
terminal: a TTY when interactive, output streamed live, the process's exit code returned.
What it does not do without a TTY is pass Ctrl-C on, so envctl records the process's PID
inside the container and delivers SIGINT/SIGTERM itself. Output of non-interactive runs is
also written to the environment's workspace on the host, so it outlives the container.
"""

from __future__ import annotations

import difflib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from envctl import runs
from envctl.errors import EnvctlError, EXIT_USAGE, HostNotReady
from envctl.masking import StreamMask
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
    args = [docker, "exec", "-i"]
    if invocation.tty:
        args.append("-t")
    if invocation.workdir:
        args += ["-w", invocation.workdir]
    # Values travel in the child's environment, not on its command line (where `ps` shows them).
    child_env = dict(os.environ if environ is None else environ)
    for key, value in invocation.env.items():
        args += ["-e", key]
        child_env[key] = value
    args += [invocation.container, "sh", "-c", runs.WRAPPER, pid_file, record, *invocation.argv]
    if invocation.tty:
        # The terminal delivers Ctrl-C to the process through the TTY.
        return subprocess.call(args, env=child_env)
    return _run_piped(args, child_env, invocation, docker, pid_file, log_writer)


def _run_piped(args: list[str], child_env: dict, invocation: Invocation, docker: str, pid_file: str, log=None) -> int:
    if log is None and invocation.log_file is not None:
        invocation.log_file.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered: each chunk reaches the file as it is printed, for `logs -f` in another terminal.
        log = open(invocation.log_file, "ab", buffering=0)
    # A session of its own: Ctrl-C reaches envctl only, which forwards it into the container.
    child = subprocess.Popen(args, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)

    def forward(signum, _frame):
        subprocess.run([docker, "exec", invocation.container, "sh", "-c", f'kill -{signum} "$(cat {pid_file})"'],
                       env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    masker = StreamMask(invocation.masked)  # a passed secret the program prints is masked on screen and in the log
    try:
        out = sys.stdout.buffer
        for chunk in itertools.chain(iter(lambda: child.stdout.read1(65536), b""), [None]):  # None: the end
            chunk = masker.feed(chunk) if chunk is not None else masker.flush()
            out.write(chunk)
            out.flush()
            if log is not None:
                log.write(chunk)
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if log is not None:
            log.close()
        subprocess.run([docker, "exec", invocation.container, "rm", "-f", pid_file],
                       env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def log_path(workspace: Path, entrypoint: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return workspace / "logs" / f"{entrypoint}-{stamp}.log"


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
