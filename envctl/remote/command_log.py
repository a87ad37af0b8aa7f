"""What this process asked SSH hosts and what they answered, for the record of a no-op
`up NAME --host H` (envctl/quick_up_record.py) and of the resolution of `exec ENTRY --host H`
(envctl/quick_exec_record.py), which the next such command replays through the live master to
check that the host still answers the same (envctl/quick_up_remote.py).

Every remote command's local argv passes through SSHConnection.command or bulk_command
(envctl/remote/ssh.py), which calls `built` (a command given to a session opened ahead,
envctl/remote/standby.py start: that session's argv and the command's line); the two places that wait for a command's end and
read its whole output (SSHConnection._raw, SSHHost._collect for the probe round started early)
call `answered`. A command built and never answered here (a transfer, an entrypoint's run: their
output is read as it streams) or one that may change the host makes the log unusable for a
record (`reads`), but for the one exec runs its entrypoint in, which it names (`session`).

Kept for the whole process (a few entries per command; outputs as sha256 only), from its first
command on: `up --host` opens its hosts on threads before the command starts
(envctl/remote/early_open.py), so there is no later moment to start listening from.
"""

from __future__ import annotations

import hashlib
import threading
from typing import NamedTuple, Sequence


class Answer(NamedTuple):
    argv: tuple[str, ...]  # the local ssh argv, as built
    returncode: int
    stdout: str  # sha256 hex of the bytes
    stderr: str | None  # sha256 hex, or None where the caller did not read stderr


_lock = threading.Lock()
_built: list[tuple[tuple[str, ...], bool]] = []  # (argv, reads_only) of every command built
_answered: list[Answer] = []
_with_input: list[tuple[str, ...]] = []  # argvs given bytes on stdin: never replayed (they may be secrets)
_unread_unless_answered: set[tuple[str, ...]] = set()  # see `read_only_if_answered`
_sessions: list[tuple[str, ...]] = []  # see `session`


def built(argv: Sequence[str], reads_only: bool) -> None:
    with _lock:
        _built.append((tuple(argv), reads_only))


def read_only_if_answered(argv: Sequence[str]) -> None:
    """`argv` (built) runs in the background and its output is read only if something asks for it
    (SSHHost.start_probe_round: the probe round of a host opened from a note), and then through
    `answered`: never answered, it was never read and counts for nothing."""
    with _lock:
        _unread_unless_answered.add(tuple(argv))


def session(argv: Sequence[str]) -> None:
    """`argv` (built) is the command in which `exec` runs its entrypoint (envctl/execute.py
    HostSession): not one of the reads, which the record of `exec ENTRY --host H` replays
    (envctl/quick_exec_record.py keeps it apart, as `sessions` gives it)."""
    with _lock:
        _sessions.append(tuple(argv))


def sessions() -> list[tuple[str, ...]]:
    with _lock:
        return list(_sessions)


def answered(argv: Sequence[str], given: bytes | None, returncode: int, stdout: bytes, stderr: bytes | None) -> None:
    """A command ran to its end: `given` the bytes it had on stdin, its exit code and output."""
    answer = Answer(tuple(argv), returncode, digest(stdout), None if stderr is None else digest(stderr))
    with _lock:
        _answered.append(answer)
        if given:
            _with_input.append(answer.argv)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reads() -> list[Answer] | None:
    """The commands run so far, each once, when every one built only reads the host (reads_only),
    had nothing on stdin and was answered here, and one argv always got the same answer; else
    None (the host was changed or asked something a replay cannot ask again)."""
    with _lock:
        built_now, answered_now, with_input = list(_built), list(_answered), set(_with_input)
        unread = set(_unread_unless_answered)
        running = set(_sessions)
    built_now = [(argv, reads_only) for argv, reads_only in built_now if argv not in running]
    if any(not reads_only for _argv, reads_only in built_now) or with_input:
        return None
    seen: dict[tuple[str, ...], Answer] = {}
    for answer in answered_now:
        if seen.setdefault(answer.argv, answer) != answer:
            return None
    if any(argv not in seen and argv not in unread for argv, _reads_only in built_now):
        return None
    return list(seen.values())


def forget() -> None:
    """Start over (tests that run several commands in one process)."""
    with _lock:
        _built.clear()
        _answered.clear()
        _with_input.clear()
        _unread_unless_answered.clear()
        _sessions.clear()
