"""An exclusive lock between processes on this host, held for a `with` block."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, wait: bool = True):
    """flock(2) on `path` (created if needed): released when the block ends or the process
    dies, so a killed `up` or `fetch` never leaves a stale lock behind. The block is given
    whether it holds the lock: always with `wait`; without it, False at once when another
    holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
