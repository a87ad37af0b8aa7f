"""Writing files so that nobody ever reads half of one, or has one replaced while reading it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from envctl.fs_errors import naming


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`. The temporary
    name is unique per call: writers in several processes, or several threads of one (`up` on
    many hosts), never share one. Raises OSError naming `path` (not the temporary, and also for a
    full disk, whose error names no file) so that the user is told which file could not be
    written (envctl/fs_errors.py)."""
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise naming(exc, path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)  # 0o644: as an ordinary write would leave it (mkstemp makes it 0600)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise naming(exc, path) from None
        raise


def place_once(source: Path, target: Path) -> bool:
    """Move the finished file `source` to `target` unless a file is there already, in one step
    no other writer can come between: True when `source` became `target`, False when `target`
    was there (then `source` is removed). A file someone reads at `target` is never replaced
    under them: a reader that checks its file's inode after reading (envctl/file_digest.py)
    would take a rename over it, even of the same bytes, for a file that changed while it read.
    `source` and `target` are in one directory. Raises OSError as os.replace does.

    os.link fails with FileExistsError where the name is taken (link(2)); where it fails otherwise
    (a file system without hard links: EPERM, ENOTSUP, ENOSYS on some FUSE and network mounts;
    EMLINK), a rename that first looks is the best there is."""
    try:
        os.link(source, target)
    except FileExistsError:
        source.unlink(missing_ok=True)
        return False
    except OSError:
        if target.exists():
            source.unlink(missing_ok=True)
            return False
        os.replace(source, target)
        return True
    source.unlink(missing_ok=True)
    return True
