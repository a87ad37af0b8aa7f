"""What a failed file operation on envctl's own directories (the cache, workspaces, state
files) means for the user: the path, what is wrong with it, and what to do.

The errno values and their meanings are POSIX's (errno(3)); the cases met in practice are a
read-only filesystem (EROFS: a read-only bind mount, a remounted disk), a full one (ENOSPC,
EDQUOT: a small tmpfs, a quota), no permission (EACCES, EPERM: a directory of another user) and
a missing or mistyped parent (ENOENT, ENOTDIR: ENVCTL_CACHE naming a path below a file or a
directory that does not exist and cannot be made)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from envctl.errors import HostNotReady

SETTINGS = "point ENVCTL_CACHE / ENVCTL_WORKSPACE at a directory you can write"

_WHAT = {
    errno.EROFS: ("is on a read-only filesystem", "remount it read-write, or " + SETTINGS),
    errno.ENOSPC: ("is on a full filesystem", "free space there (envctl cache gc), or " + SETTINGS
                   + " on a larger disk; what was fetched so far is kept and resumed"),
    errno.EDQUOT: ("is over its disk quota", "free space within the quota (envctl cache gc), or " + SETTINGS),
    errno.EACCES: ("is not writable by this user", "fix its owner or mode (chown/chmod), or " + SETTINGS),
    errno.EPERM: ("may not be changed by this user", "fix its owner or attributes, or " + SETTINGS),
    errno.ENOENT: ("does not exist and cannot be created", "create its parent directory, or " + SETTINGS),
    errno.ENOTDIR: ("has a file where a directory is needed", "move that file away, or " + SETTINGS),
    errno.EISDIR: ("is a directory where a file is needed", "move that directory away"),
    errno.EEXIST: ("exists and is in the way", "move it away"),
    errno.ENAMETOOLONG: ("is too long for the filesystem", SETTINGS + " with a shorter path"),
    errno.EMLINK: ("has too many links", "envctl cache gc, or " + SETTINGS),
}


class PathError(HostNotReady):
    """A directory or file envctl must write cannot be written (exit 5: the host is not ready)."""

    def __init__(self, message: str, hint: str | None, path: str | None, errno_value: int | None):
        super().__init__(message, hint)
        self.path = path
        self.errno = errno_value


def explain_os_error(exc: OSError, path: str | os.PathLike | None = None, doing: str | None = None) -> PathError:
    """A PathError for `exc`, naming `path` (else exc.filename) and, when given, what envctl was
    `doing` ("downloading model.bin"). For ENOENT the first missing ancestor is named, since
    that is the one to create."""
    where = os.fspath(path) if path is not None else (os.fspath(exc.filename) if exc.filename is not None else None)
    what, hint = _WHAT.get(exc.errno, (f"cannot be written ({exc.strerror or exc})", SETTINGS))
    if exc.errno == errno.ENOENT and where:
        missing = _first_missing(Path(where))
        if missing is not None and str(missing) != where:
            what = f"cannot be created: {missing} does not exist"
    subject = where or "a file envctl writes"
    message = f"{subject} {what}" + (f" (while {doing})" if doing else "")
    if exc.errno not in _WHAT:
        message += f" [{errno.errorcode.get(exc.errno, exc.errno)}]"
    return PathError(message, hint, where, exc.errno)


# Errors that only a filesystem gives, even when the OSError names no file (a write(2) to a full
# disk reports ENOSPC without one).
_FILESYSTEM_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def is_path_error(exc: BaseException) -> bool:
    """An OSError about a file or directory, as opposed to a socket's or a connection's (requests'
    exceptions derive from OSError too)."""
    if not isinstance(exc, OSError) or type(exc).__module__.startswith(("requests", "urllib3", "docker")):
        return False
    return exc.filename is not None or exc.errno in _FILESYSTEM_ONLY


def naming(exc: OSError, path: str | os.PathLike) -> OSError:
    """`exc` as an OSError of the same class that names `path`: a write(2) to a full disk and a
    temporary file's failure name no file, or the wrong one."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, os.fspath(path))


def _first_missing(path: Path) -> Path | None:
    missing = None
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return missing
        missing = candidate
    return missing
