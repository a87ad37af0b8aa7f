"""Writing a small file so that nobody ever reads half of it."""

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
