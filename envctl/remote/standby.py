"""SSH sessions opened ahead of the command they will run.

A command on an SSH host costs a round trip before its first byte of input can go: the master
opens a channel on the server and asks it to run the command, and OpenSSH sends the session's
stdin only once the server confirmed that (about two round trips to the command's first word
back). `up` knows it will probably send files to a fresh host (its artifacts, its image
tarball) while it still plans: `open` starts that many sessions then, each running _AWAIT, which
does nothing until it is sent a command line, then becomes that command (exec), its stdin going
on to it. A push (envctl/remote/transfer.py) takes one with `start` once the plan has decided,
and its bytes go at once. A session nobody takes gets no line: it ends (`discard`, or at
envctl's exit) having run nothing of envctl's, so a plan that is refused, or that sends nothing,
changes nothing on the host (its login's own start-up, a shell's rc files or ~/.ssh/rc, runs
as for any session).

The command runs as in a session started for it: the same ssh options (the master, its
host-key policy), the same script and arguments, the same exit code and output; on the host it
is `sh -c _AWAIT` that becomes it.
"""

from __future__ import annotations

import atexit
import shlex
import subprocess
import threading
from typing import Sequence

from envctl import interrupts
from envctl.remote import command_log
from envctl.remote.ssh import trace

# Reads one line, a POSIX shell command line (whose newlines are written "$nl"), and becomes it.
# `read` takes stdin a byte at a time from a pipe (dash, bash, busybox ash): what follows the
# line is left for the command. EOF first: exit 0, nothing run.
_AWAIT = "nl='\n'\nIFS= read -r line || exit 0\neval \"exec $line\"\n"

MOST = 2  # sessions waiting per connection at most: sshd's MaxSessions is 10 by default, less where hardened

_lock = threading.Lock()
_waiting: dict[str, list[tuple[tuple[str, ...], subprocess.Popen]]] = {}  # control path → (argv, process)


def command_line(argv: Sequence[str]) -> bytes:
    """`argv` as the one line _AWAIT runs: shlex.join's POSIX quoting, in which a newline can
    only stand inside single quotes, where it is written '"$nl"' (quote closed, the newline,
    quote opened again)."""
    # surrogateescape: a path's bytes as os.fsdecode gave them, as subprocess passes an argv
    return (shlex.join(argv).replace("\n", "'\"$nl\"'") + "\n").encode("utf-8", "surrogateescape")


def open(connection, count: int) -> None:  # noqa: A001 (the module's verb: standby.open)
    """Start `count` waiting sessions on `connection`'s master (at most MOST waiting in all).
    Call only once the master is up: a session started without one would make its own
    connection. A session that cannot be started is simply not there."""
    with _lock:
        waiting = _waiting.setdefault(connection.control_path, [])
        wanted = min(count, MOST - len(waiting))
    for _ in range(max(0, wanted)):
        interrupts.check()  # nothing new after Ctrl-C
        argv = connection.base("-T", connection.destination, "--", shlex.join(["sh", "-c", _AWAIT, "sh"]),
                               kind="standby")
        try:
            with interrupts.deferred():  # no session left running that nobody knows of
                process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE)
                atexit.register(_close, process)
                with _lock:
                    waiting.append((tuple(argv), process))
        except OSError:
            return


def discard(connection) -> None:
    """End the sessions still waiting on `connection` (none is taken from now on): once the
    pushes they were opened for are done, or the plan sends nothing, they would only hold
    sessions of the host's MaxSessions."""
    with _lock:
        waiting = _waiting.pop(connection.control_path, [])
    for _, process in waiting:
        _close(process)


def start(connection, argv: Sequence[str]) -> subprocess.Popen:
    """`argv` running on the host, in a session `open` started when one still waits (else in a
    new one, as connection.command builds it), with stdin, stdout and stderr piped. Counts as
    a command that may change the host (connection.generation). Raises KeyboardInterrupt after
    Ctrl-C, FileNotFoundError when there is no ssh."""
    while True:
        with _lock:
            waiting = _waiting.get(connection.control_path)
            taken = waiting.pop(0) if waiting else None
        if taken is None:
            return subprocess.Popen(connection.command(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        local, process = taken
        if process.poll() is not None:  # ended meanwhile (the master went): not this command's
            continue
        interrupts.check()
        line = command_line(argv)
        try:
            process.stdin.write(line)
            process.stdin.flush()
        except OSError:  # it ended just now: nothing was run
            _close(process)
            continue
        connection.generation += 1
        command_log.built(local + (line.decode("utf-8", "surrogateescape"),), False)
        trace("session", connection.destination, ["opened-ahead:", *argv])
        return process


def _close(process: subprocess.Popen) -> None:
    """Ends a session nobody took (or one whose line could not be written): the master closes
    its channel, and _AWAIT there reads EOF and ends having run nothing. A taken session has
    ended by the time envctl exits (its command's output was read to the end)."""
    if process.poll() is None:
        process.kill()
        process.wait()
