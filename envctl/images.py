"""SDK images: remembering what a tarball holds, loading it, building a context.

A tarball's identity is read from the tarball itself (envctl/tarballs.py), never guessed from
its file name. Reading a multi-GB compressed tarball means decompressing all of it, so what was
read is remembered per (path, size, mtime) and the next check costs nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import queue
import socket
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Iterator

from envctl.atomic import write_text_atomic
from envctl.regular_file import read_regular_text
from envctl.tarballs import (CountingReader, ImageError, SavedImage, TarballIdentity, compression_of, decompressing, read_errors,
                             changed_while_read, read_identity, read_stream_identity, sha256_mismatch, unreadable_tarball)

__all__ = ["ImageError", "TarballIdentity", "IdentityCache", "identify", "load_tarball", "loaded_ids", "read_identity",
           "context_digest"]

CHUNK = 1 << 20
# What every engine envctl supports takes as it is: Docker 20.10 refuses zstd ("invalid tar
# header") and Docker's xz support runs an `xz` binary the host may lack, so those (and bzip2,
# for one rule) are decompressed here and streamed to the engine as a plain tar. On a local
# socket gzip is decompressed here too (load_tarball says why).
ENGINE_TAKES = ("none", "gzip")
_CACHE_VERSION = 5  # entries written before every platform of a multi-platform image was read are read again


class IdentityCache:
    """Remembered tarball identities, keyed by resolved path and checked against size and mtime."""

    def __init__(self, file: Path):
        self.file = file

    def _read(self) -> dict:
        try:
            return json.loads(read_regular_text(self.file))
        except (OSError, ValueError):
            return {}

    def get(self, path: Path, need_sha256: bool = False) -> TarballIdentity | None:
        entry = self._read().get(str(path.resolve()))
        if not entry:
            return None
        stat = path.stat()
        if entry.get("size") != stat.st_size or entry.get("mtime_ns") != stat.st_mtime_ns:
            return None
        if need_sha256 and not entry.get("sha256"):
            return None
        if entry.get("version") != _CACHE_VERSION:
            return None
        images = tuple(SavedImage(i["image_id"], tuple(i["repo_tags"]), tuple(i["manifest_digests"]),
                                  tuple(tuple(p) for p in i.get("platforms") or ())) for i in entry["images"])
        return TarballIdentity(entry["image_id"], tuple(entry["repo_tags"]), entry["size"], entry["mtime_ns"], entry.get("sha256"),
                               tuple(entry["manifest_digests"]), entry["compression"], images, entry["docker_manifest"])

    def record_sha256(self, path: Path, sha256: str, size: int, mtime_ns: int) -> None:
        """Remember the sha256 of the file a load read whole and verified, when the remembered
        identity is of that very file (`size` and `mtime_ns` as it was stat'ed before the load
        and is now): a later check of the pin then needs no read."""
        entry = self._read().get(str(path.resolve()))
        stat = path.stat()
        if (not entry or entry.get("version") != _CACHE_VERSION or entry.get("sha256")
                or not entry.get("size") == stat.st_size == size or not entry.get("mtime_ns") == stat.st_mtime_ns == mtime_ns):
            return
        known = self.get(path)
        if known is not None:
            self.put(path, replace(known, sha256=sha256))

    def put(self, path: Path, identity: TarballIdentity) -> None:
        data = self._read()
        data[str(path.resolve())] = {**asdict(identity), "version": _CACHE_VERSION}
        self.file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.file, json.dumps(data, indent=1))


def identify(path: Path, cache: IdentityCache, need_sha256: bool, progress: Callable[[int], None] | None = None) -> TarballIdentity:
    known = cache.get(path, need_sha256)
    if known is not None:
        return known
    identity = read_identity(path, with_sha256=need_sha256, progress=progress)
    cache.put(path, identity)
    return identity


def _chunks(path: Path, progress: Callable[[int], None] | None, compression: str = "none",
            expected_sha256: str | None = None) -> Iterator[bytes]:
    """The bytes the engine is sent: the file itself, or its decompressed tar stream. With
    `expected_sha256` (of the file as stored), the file is hashed as it is read and its tail
    (_send_verified) is held back until the digest is known: on a mismatch the generator raises
    before the body is complete, the request is broken off and the engine loads nothing."""
    digest = hashlib.sha256() if expected_sha256 else None
    with open(path, "rb") as raw:
        source = _DigestingReader(raw, digest) if digest is not None else raw
        handle = source if compression in ENGINE_TAKES else decompressing(CountingReader(source, progress), compression)
        if compression not in ENGINE_TAKES:
            progress = None  # counted on the compressed side
        held, zeros = None, 0  # the tail: the last piece with a byte other than zero, then the zeros after it
        while True:
            # 1 MiB, not SEND_CHUNK: each read here allocates its piece, and 4 MiB ones cost
            # more page faults than they save calls (0.4 s more system time per GiB of zstd)
            data = handle.read(CHUNK)
            if not data:
                break
            if progress:
                progress(len(data))
            if digest is None:
                yield data
            elif _all_zero(data):
                zeros += len(data)
            else:
                if held is not None:
                    yield held
                yield from map(bytes, _zeros(zeros))
                held, zeros = data, 0
        if digest is not None:
            while source.read(CHUNK):  # a decompressor may stop before the file's last bytes
                pass
            if digest.hexdigest() != expected_sha256:
                raise sha256_mismatch(path, digest.hexdigest(), expected_sha256)
            if held is not None:
                yield held
            yield from map(bytes, _zeros(zeros))


class _HeldTail:
    """The tail of a verified send, held back until the digest is known (_send_verified says
    why): the last piece with a byte other than zero, and the count of zeros after it (counted,
    not kept). `take` queues on `sender` what can no longer be the tail; `release` queues the
    tail, once the digest is the pinned one."""

    def __init__(self, sender):
        self.sender = sender
        self.held = None  # (buffer, length) of the last piece with a byte other than zero
        self.zeros = 0  # bytes of zeros read after it

    def take(self, buffer, n: int, piece) -> None:
        """`buffer` holds `n` bytes just read; `piece` is those bytes (for the zeros test)."""
        if _all_zero(piece):
            self.zeros += n
            self.sender.free.put(buffer)
            return
        self.release()
        self.held, self.zeros = (buffer, n), 0

    def release(self) -> None:
        if self.held is not None:
            self.sender.full.put(self.held)
        if self.zeros:
            self.sender.full.put((None, self.zeros))
        self.held, self.zeros = None, 0


def _all_zero(piece: bytes | bytearray) -> bool:
    """Whether a piece is zeros only: told by its last byte for most, else by memcmp against
    zeros (bytes equality; a memoryview comparison would go byte by byte in Python's loop)."""
    if piece[-1]:
        return False
    return piece == (_ZERO_PIECE if len(piece) == SEND_CHUNK else _ZERO_PIECE[: len(piece)])


def _zeros(count: int) -> Iterator[memoryview]:
    while count > 0:
        yield memoryview(_ZERO_PIECE)[: min(count, SEND_CHUNK)]
        count -= SEND_CHUNK


class _DigestingReader:
    """Reads a file, adding every byte read to `digest`."""

    def __init__(self, handle, digest):
        self.handle, self.digest = handle, digest

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer) -> int:
        n = self.handle.readinto(buffer)
        self.digest.update(memoryview(buffer)[:n])
        return n

    def readable(self) -> bool:
        return True


def load_tarball(client, path: Path, progress: Callable[[int], None] | None = None, socket_path: str | None = None,
                 expected_sha256: str | None = None,
                 identity_check: Callable[[TarballIdentity], None] | None = None) -> list[str]:
    """Stream a tarball into the engine; memory stays flat whatever its size. On a local unix
    socket the file goes to the engine with sendfile(2): no copy through Python, which keeps
    envctl as fast as `docker load`. Returns the engine's "Loaded image" lines. Raises
    ImageError with the engine's reason. A compression the engine may not take (ENGINE_TAKES) is
    decompressed here on the way, without a temporary copy.

    `expected_sha256` (hex, of the file as stored): the file is hashed in the same read that
    sends it, and its tail (_send_verified says which bytes) is sent only once the whole file's
    digest is that one. On a mismatch the request is broken off short of its length, the
    engine's read of the body fails (a Go HTTP server reads an unexpected EOF) before the
    archive's end, and Sha256Mismatch (an ImageError) says the sha256 found and expected;
    nothing was loaded.

    On a local socket a compressed tarball (every format, gzip included) is decompressed here,
    in this process (ISA-L for gzip, libzstd for zstd, envctl/tarballs.py decompressing), and the
    plain tar is sent as a chunked body while the next piece is decompressed: the engine's own
    decompression (Go's compress/gzip, single-threaded) is the slow side of `docker load -i` of a
    .tar.gz (7.1 s against 5.5 s for the same 1 GiB plain, Docker 20.10 here), and ISA-L inflates
    the same in 0.45 s of a second core. The decompressed archive ends where the compressed file
    does; a truncated or corrupt file breaks the body off before its last chunk, and the engine
    loads nothing.

    `identity_check(identity)` (a compressed tarball on a local socket; `expected_sha256` None):
    the tarball's identity is read from the bytes as they are decompressed for the engine, its
    sha256 beside them (_send_reading_identity), and `identity_check` gets the TarballIdentity
    (sha256 included) before the tail is sent: what it raises (ImageError) leaves the engine an
    incomplete body, nothing loaded. The tarball is read once instead of twice (its identity
    first, then the load). ValueError for identity_check without a local socket or with an
    uncompressed tarball (whose identity is read by its headers in milliseconds)."""
    compression = compression_of(path)
    if identity_check is not None and (socket_path is None or compression == "none"):
        raise ValueError("identity_check is for a compressed tarball sent to the engine's local socket")
    if socket_path is not None:
        from envctl.engine import translated  # an engine that goes away is an envctl error, as on the API path

        events = translated(_load_by_socket(socket_path, client.api.api_version, path, progress, expected_sha256, compression,
                                            identity_check),
                            "images.load", f"unix://{socket_path}")
    else:
        events = _load_by_api(client, path, progress, compression, expected_sha256)
    loaded = []
    for event in events:
        if "error" in event or "errorDetail" in event:
            detail = (event.get("errorDetail") or {}).get("message") or event.get("error")
            raise ImageError(f"the engine could not load {path}: {detail}", hint="the tarball may be corrupt: download it again")
        text = (event.get("stream") or "").strip()
        if text.startswith("Error unpacking image"):
            # The containerd store reports a layer it cannot unpack as a line of the stream, after
            # "Loaded image" (Docker 28.5.2), and the image stays behind, tagged and unusable.
            raise ImageError(f"the engine could not load {path}: {text}", hint="the tarball may be corrupt: download it again")
        if text.startswith("Loaded image"):
            loaded.append(text)
    return loaded


def loaded_ids(lines: list[str]) -> list[str]:
    """The image IDs in `docker load` output ("Loaded image ID: sha256:..."), which is how an
    engine reports a tarball saved by ID (no tag to report)."""
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Loaded image ID:")]


def _load_by_api(client, path: Path, progress, compression: str, expected_sha256: str | None = None) -> Iterator[dict]:
    from docker.errors import APIError

    try:
        yield from client.api.load_image(_chunks(path, progress, compression, expected_sha256))
    except APIError as exc:
        raise ImageError(f"the engine could not load {path}: {exc.explanation or exc}", hint="the tarball may be corrupt: download it again") from None


# The verified send's pieces: large enough that the per-piece Python work is noise (a 1 GiB
# tarball is 256 of them), small enough that the buffers in flight stay a few MiB.
SEND_CHUNK = 4 << 20
_BUFFERS = 3
_ZERO_PIECE = bytes(SEND_CHUNK)  # calloc'ed and never written: it costs no resident memory


def _load_by_socket(socket_path: str, api_version: str, path: Path, progress, expected_sha256: str | None,
                    compression: str = "none", identity_check=None) -> Iterator[dict]:
    size = path.stat().st_size
    # A decompressed body's length is known only at its end: it goes in chunks (RFC 9112 7.1),
    # which Go's HTTP server reads as docker-py's chunked uploads.
    length = f"Content-Length: {size}" if compression == "none" else "Transfer-Encoding: chunked"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection, open(path, "rb") as handle:
        connection.connect(socket_path)
        connection.sendall(
            f"POST /v{api_version}/images/load HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n"
            f"{length}\r\n\r\n".encode()
        )
        try:
            if identity_check is not None:
                _send_reading_identity(connection, handle, compression, path, progress, identity_check)
            elif compression != "none":
                _send_decompressed(connection, handle, compression, path, progress, expected_sha256)
            elif expected_sha256 is None:
                _send_range(connection, handle, 0, size, path, progress)  # sendfile(2): no copy through Python
            else:
                _send_verified(connection, handle, size, path, progress, expected_sha256)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the engine stopped reading: its answer below says why
        response = http.client.HTTPResponse(connection)
        response.begin()
        body = response.read().decode("utf-8", errors="replace")
    if response.status != 200:
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body.strip()
        raise ImageError(f"the engine could not load {path}: {message}", hint="the tarball may be corrupt: download it again")
    for line in body.splitlines():
        if line.strip():
            yield json.loads(line)


def _send_verified(connection: socket.socket, handle, size: int, path: Path, progress, expected_sha256: str) -> None:
    """The file by sendfile(2), as an unpinned one is sent, while a second thread reads it by a
    handle of its own and hashes it (envctl/file_digest.py): the kernel copies the bytes to
    the engine and the hash takes the other core. Read into buffers, hashed, then sent by
    Python, a 1 GiB tarball cost 1.8 s of CPU beside the engine's load and 0.6-0.8 s of wall
    time over an unpinned one on 2 cores; this way the hash is the only extra work (0.95 s of
    CPU, in 64 KiB pieces that stay in the cache).

    The tail is held back until the digest is known: from the last 512-byte block with a byte
    other than zero before the archive's end-of-archive blocks to the end (_held_from). A tar
    ends in zero blocks and may be padded with more (GNU tar fills its last 10 KiB record), or
    followed by other bytes, which an engine's tar reader stops before; the block held back lies
    before them, so without it the engine has an incomplete archive whatever follows. On a mismatch the tail is never sent and ImageError (sha256_mismatch)
    is raised: the caller closes the connection short of Content-Length, the engine's read of
    the body fails (a Go HTTP server reads an unexpected EOF) and nothing is loaded. A file
    that changed while it was read (size, mtime or inode) is refused the same way: its bytes
    sent may not be those hashed."""
    from envctl.file_digest import FileChanged, FileSha256

    tail = _held_from(handle, size)
    hashing = FileSha256(path, os.fstat(handle.fileno()))
    send_error: OSError | None = None
    try:
        try:
            _send_range(connection, handle, 0, tail, path, progress)
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The engine stopped reading. The hash goes on: a tarball that is not the pinned one
            # is reported as such, whatever the engine said.
            send_error = exc
        found = hashing.result()
    except FileChanged:
        raise changed_while_read(path, "loaded") from None
    finally:
        hashing.stop()
    if found != expected_sha256:
        raise sha256_mismatch(path, found, expected_sha256)
    if send_error is not None:
        raise send_error
    _send_range(connection, handle, tail, size, path, progress)


def _held_from(handle, size: int) -> int:
    """Where the tail a verified send holds back begins: the last 512-byte block with a byte
    other than zero before the archive's end-of-archive blocks. Not merely before the file's
    end: an engine's tar reader stops at those blocks and the containerd store then loads and
    tags the image whatever follows, so a tarball with other bytes after them (appended to, two
    tars in one file) was loaded although its digest was not the pinned one. The end is found
    by the members' headers (tarfile seeks over their data: a few ms); a file tarfile cannot
    read is held back from its last block with a byte other than zero, as the engine is then
    unlikely to read it whole either."""
    import tarfile

    end = size
    try:
        handle.seek(0)
        # tarfile stops at the first zero block; Go's reader (the engine's) needs two, so its
        # archive never ends before this.
        with tarfile.open(fileobj=handle, mode="r:") as archive:
            for _ in archive:
                pass
            end = min(size, archive.offset)
    except (tarfile.TarError, EOFError, ValueError):
        pass
    finally:
        handle.seek(0)
    return _tail_start(handle, end)


def _tail_start(handle, size: int) -> int:
    """The offset of the last 512-byte block of the file with a byte other than zero (0 for a
    file of zeros only), read from its end backwards in pieces of CHUNK."""
    end = size
    while end > 0:
        start = max(0, end - CHUNK)
        piece = os.pread(handle.fileno(), end - start, start)
        last = len(piece.rstrip(b"\0"))
        if last:
            return (start + last - 1) // 512 * 512
        end = start
    return 0


def _send_range(connection: socket.socket, handle, offset: int, end: int, path: Path, progress) -> None:
    """Bytes offset..end of the file by sendfile(2)."""
    while offset < end:
        sent = os.sendfile(connection.fileno(), handle.fileno(), offset, min(CHUNK * 8, end - offset))
        if sent == 0:
            raise ImageError(f"{path} shrank while it was being loaded")
        offset += sent
        if progress:
            progress(sent)


def _send_decompressed(connection: socket.socket, handle, compression: str, path: Path, progress,
                       expected_sha256: str | None) -> None:
    """The file's decompressed tar as a chunked body: this thread decompresses into one buffer
    while a second one sends the one before (the decompressors and sendall release the GIL).
    Progress counts the compressed bytes read. With `expected_sha256` (of the compressed file),
    the file is hashed as it is read and the tail is held back as _send_verified does. The last
    chunk is sent only once the decompressor reached the end of the file without an error (and,
    when pinned, the digest is that one): otherwise the body stops short and the engine loads
    nothing."""
    digest = hashlib.sha256() if expected_sha256 else None
    source = _DigestingReader(handle, digest) if digest is not None else handle
    reader = decompressing(CountingReader(source, progress), compression)
    sender = _Sender(connection, chunked=True)
    sender.start()
    tail = _HeldTail(sender)
    try:
        while True:
            buffer = sender.free.get()
            n = reader.readinto(buffer)
            if not n:
                sender.free.put(buffer)
                break
            if digest is None:
                sender.full.put((buffer, n))
                continue
            tail.take(buffer, n, buffer if n == len(buffer) else memoryview(buffer)[:n].tobytes())
        if digest is not None:
            while source.read(CHUNK):  # a decompressor may stop before the file's last bytes
                pass
            if digest.hexdigest() != expected_sha256:
                raise sha256_mismatch(path, digest.hexdigest(), expected_sha256)
            tail.release()
        sender.full.put(_LAST_CHUNK)
    except _decompression_errors() as exc:  # the file's own read errors (EIO) stay OSErrors
        raise unreadable_tarball(path, compression, exc) from None
    finally:
        sender.full.put(None)
        sender.join()
    if sender.error is not None:
        raise sender.error


def _send_reading_identity(connection: socket.socket, handle, compression: str, path: Path, progress,
                           identity_check: Callable[[TarballIdentity], None]) -> None:
    """As _send_decompressed, the tarball's identity read from the same decompressed bytes
    (tarfile in stream mode through _Copying, which hands each piece to the sender too) and its
    sha256 on a thread of its own (envctl/file_digest.py); `identity_check` gets the identity
    once the archive and the file are read to their ends, and the tail and the body's last chunk
    are sent only when it returns. What follows the two end-of-archive blocks (padding, or other
    bytes) is read, never sent: the engine's tar reader stops at those blocks, and a piece of
    other bytes after them would have sent the piece holding them before the check
    (_HeldTail sends every piece before the last with a byte other than zero)."""
    from envctl.file_digest import FileChanged, FileSha256, changed_since

    before = os.fstat(handle.fileno())
    hashing = FileSha256(path, before)
    sender = _Sender(connection, chunked=True)
    sender.start()
    tail = _HeldTail(sender)
    try:
        copying = _Copying(decompressing(CountingReader(handle, progress), compression), sender, tail)
        identity, end = read_stream_identity(copying, path, before, compression)
        copying.finish(end + 2 * 512)
        sha = hashing.result()
        identity_check(replace(identity, sha256=sha))
        tail.release()
        sender.full.put(_LAST_CHUNK)
    except FileChanged:
        raise changed_while_read(path, "loaded") from None
    except _decompression_errors() as exc:
        if changed_since(path, before):  # cut short by a writer still at it, not damaged
            raise changed_while_read(path, "loaded") from None
        raise unreadable_tarball(path, compression, exc) from None
    finally:
        hashing.stop()  # when this read failed, its error is the one reported
        sender.full.put(None)
        sender.join()
    if sender.error is not None:
        raise sender.error


class _Copying:
    """A reader of `reader` for tarfile that copies every piece read into the sender's buffers
    as well, handing each full one to `tail` (which sends what can no longer be the tail)."""

    def __init__(self, reader, sender: "_Sender", tail: _HeldTail):
        self.reader, self.sender, self.tail = reader, sender, tail
        self.buffer: bytearray | None = None
        self.filled = 0
        self.position = 0  # bytes read from `reader`
        self.limit: int | None = None  # bytes from this offset on are read, not copied

    def read(self, size: int = -1) -> bytes:
        data = self.reader.read(size)
        start, self.position = self.position, self.position + len(data)
        copied = len(data) if self.limit is None else max(0, min(len(data), self.limit - start))
        view, at = memoryview(data), 0
        while at < copied:
            if self.buffer is None:
                self.buffer, self.filled = self.sender.free.get(), 0
            step = min(copied - at, len(self.buffer) - self.filled)
            self.buffer[self.filled:self.filled + step] = view[at:at + step]
            self.filled += step
            at += step
            if self.filled == len(self.buffer):
                self._hand_over()
        return data

    def readable(self) -> bool:
        return True

    def finish(self, end: int) -> None:
        """Read the rest of the stream to its end, copying only what lies before offset `end`
        (the end of the archive's end-of-archive blocks), and hand over the last piece, cut at
        `end`: tarfile read past it already (a piece of STREAM_BUFSIZE), and those bytes
        stay unsent too."""
        if self.buffer is not None and self.position > end:
            self.filled = max(0, self.filled - (self.position - end))
        self.limit = end
        while self.read(CHUNK):
            pass
        if self.buffer is not None:
            if self.filled:
                self._hand_over()
            else:
                self.sender.free.put(self.buffer)
                self.buffer = None

    def _hand_over(self) -> None:
        buffer, n = self.buffer, self.filled
        self.buffer = None
        self.tail.take(buffer, n, buffer if n == len(buffer) else memoryview(buffer)[:n].tobytes())


def _decompression_errors() -> tuple:
    """What a decompressor raises for a damaged file (BadGzipFile is an OSError, a read error is not one of these)."""
    return tuple(e for e in read_errors() if e is not OSError)


_LAST_CHUNK = (b"", 0)  # the chunked body's end: sent after every piece, only when all of them were read


class _Sender(threading.Thread):
    """Sends the buffers put on `full` as (buffer, length), or (None, count) for that many zero
    bytes, and hands each buffer back on `free`; after a send fails it keeps handing them back
    (so the reader never waits on it) and keeps the error. `chunked`: each piece goes as one
    chunk of a chunked body, and _LAST_CHUNK sends its end."""

    def __init__(self, connection: socket.socket, chunked: bool = False):
        super().__init__(name="envctl-load-send", daemon=True)
        self.connection = connection
        self.chunked = chunked
        self.full: queue.Queue = queue.Queue()
        self.free: queue.Queue = queue.Queue()
        for _ in range(_BUFFERS):
            self.free.put(bytearray(SEND_CHUNK))
        self.error: OSError | None = None

    def _send(self, piece) -> None:
        if self.chunked:
            self.connection.sendall(b"%x\r\n" % len(piece))
            self.connection.sendall(piece)
            self.connection.sendall(b"\r\n")
        else:
            self.connection.sendall(piece)

    def run(self) -> None:
        while (item := self.full.get()) is not None:
            buffer, n = item  # buffer None: n zero bytes
            if self.error is None:
                try:
                    if item is _LAST_CHUNK:
                        self.connection.sendall(b"0\r\n\r\n")
                    elif buffer is None:
                        for zeros in _zeros(n):
                            self._send(zeros)
                    else:
                        self._send(memoryview(buffer)[:n])
                except OSError as exc:
                    self.error = exc
            if isinstance(buffer, bytearray):
                self.free.put(buffer)


def context_digest(context: Path, memo: Path | None = None) -> str:
    """sha256 over every file's relative path and content in a build context. With `memo`, each
    file's digest is remembered by (size, mtime), so an unchanged context of large wheels costs
    a few stat calls, not a full read."""
    known = {}
    if memo is not None:
        try:
            known = json.loads(read_regular_text(memo))
        except (OSError, ValueError):
            known = {}
    seen = {}
    digest = hashlib.sha256()
    for file in sorted(p for p in context.rglob("*") if p.is_file()):
        stat = file.stat()
        key = str(file.resolve())
        entry = known.get(key)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            file_digest = entry[2]
        else:
            one = hashlib.sha256()
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(CHUNK), b""):
                    one.update(block)
            file_digest = one.hexdigest()
        seen[key] = [stat.st_size, stat.st_mtime_ns, file_digest]
        digest.update(str(file.relative_to(context)).encode() + b"\0" + file_digest.encode() + b"\0")
    if memo is not None and seen != {k: known.get(k) for k in seen}:
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(memo, json.dumps({**known, **seen}))
    return digest.hexdigest()
