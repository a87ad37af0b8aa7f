"""Reading envctl's own state files (records in the cache, notes beside the ssh masters) without
ever waiting on one that is not a file.

A plain open() of a FIFO blocks until some process opens it for writing, and a device may block
or answer forever. Such a thing can stand where a record was expected: a cache shared by a
lab's users (ENVCTL_CACHE on a group-writable disk) lets another member replace a record's name,
and a damaged cache can hold anything. envctl then reads nothing from it and takes the path it
takes for a missing record, instead of hanging with nothing printed. Files a user names
(a manifest, `--inventory <(...)`) are not read through here: a pipe is a fine way to give one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class NotRegularFile(OSError):
    """What stands at the path is not a regular file (a FIFO, a socket, a device, a directory)."""


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading in binary, when it is a regular file (symlinks followed).
    O_NONBLOCK makes the open of a FIFO return at once instead of waiting for a writer; the
    type is then checked on the open file itself (fstat), so a name replaced between a check
    and the open cannot slip through. Raises NotRegularFile (an OSError) for anything else, and
    OSError as open() does (absent, unreadable)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(f"not a regular file: {path}")
        os.set_blocking(fd, True)  # no effect on a regular file's reads; as open() would leave it
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_text(path: str | Path, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The whole text of the regular file at `path` (see open_regular). Raises NotRegularFile
    and OSError as open_regular does, UnicodeDecodeError (a ValueError) for bytes `encoding`
    cannot decode under `errors`."""
    with open_regular(path) as file:
        return file.read().decode(encoding, errors)
