"""The sha256 of a file, read on a thread of its own beside another read of the same file.

Reading a compressed image tarball's identity decompresses it whole (its manifest.json comes
after the layers: envctl/tarballs.py read_identity), and the file's sha256 is wanted from the
same read. Hashed in the decompressing thread, the two costs add up: 0.48 s of sha256 and
0.93 s of inflating for a 1 GiB tar gzip-compressed to 515 MiB, 1.45 s in all (measured here,
ISA-L, SHA-NI). The hash on a second thread, reading the file by its own handle (from the page
cache the first read fills, or the other way round), takes the second core: 0.97 s in all.
hashlib releases the GIL for pieces over 2 KiB, and the decompressors for their work.

The two reads are of one file only if it does not change between them: `FileSha256.result`
checks that the bytes hashed are the size the file had when the caller's read began, and that
its size, mtime and inode are still those; a file written meanwhile (a download or a copy still
under way) raises FileChanged, never gives a digest of bytes other than those the caller read.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Callable

# Each piece is hashed while it is still in the CPU's cache: 1 GiB from the page cache hashes in
# 0.91-0.99 s in 64 KiB pieces, 1.3-1.5 s in 256 KiB or 1 MiB ones (measured here). hashlib
# releases the GIL for any piece over 2 KiB.
PIECE = 64 << 10


class FileChanged(Exception):
    """The file changed while it was being read: its two reads may have seen different bytes."""


def changed_since(path: Path, before: os.stat_result) -> bool:
    """Whether `path` is no longer the file `before` describes (size, mtime, inode), or gone: a
    read of it that failed may have met a file still being written, not a damaged one."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return True
    return (now.st_size, now.st_mtime_ns, now.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino)


class FileSha256:
    """Start hashing `path` at once on a daemon thread; `result()` waits and returns the hex
    digest (64 characters), or raises what the read raised (OSError) or FileChanged (also for a
    file no longer there). `progress(n)`, when given, is called with each piece's size from
    that thread. `stop()` ends the read early (the caller's own read failed: its error is the
    one to report; result() is then not to be asked), and does nothing once it is done.

    `before`: os.stat_result of the file when the caller began its own read; the file must still
    be that one (size, mtime, inode) when both reads are done."""

    def __init__(self, path: Path, before: os.stat_result, progress: Callable[[int], None] | None = None):
        self.path = path
        self.before = before
        self.progress = progress
        self._stopped = threading.Event()
        self._digest: str | None = None
        self._hashed = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="envctl-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            digest = hashlib.sha256()
            buffer = bytearray(PIECE)
            view = memoryview(buffer)
            with open(self.path, "rb", buffering=0) as handle:
                while not self._stopped.is_set():
                    n = handle.readinto(buffer)
                    if not n:
                        break
                    digest.update(view[:n])
                    self._hashed += n
                    if self.progress:
                        self.progress(n)
            self._digest = digest.hexdigest()
        except BaseException as exc:  # handed to the caller's thread by result()
            self._error = exc

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def result(self) -> str:
        self._thread.join()
        if isinstance(self._error, FileNotFoundError):  # the caller had it: removed (or renamed away) since
            raise FileChanged(f"{self.path} was removed while it was being read")
        if self._error is not None:
            raise self._error
        if self._hashed != self.before.st_size or changed_since(self.path, self.before):
            raise FileChanged(f"{self.path} changed while it was being read")
        return self._digest or ""
