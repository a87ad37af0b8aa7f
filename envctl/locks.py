"""An exclusive lock between processes on this host, held for a `with` block."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path):
    """flock(2) on `path` (created if needed): released when the block ends or the process
    dies, so a killed `up` or `fetch` never leaves a stale lock behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
