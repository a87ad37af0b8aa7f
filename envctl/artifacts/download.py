"""Downloading one file over HTTP(S) into the cache: resumable, verified, parallel when it pays.

- A download writes to a partial file kept across runs; the next run asks only for the missing
  bytes (Range + If-Range, so a file that changed upstream is not spliced onto an old prefix).
- A large file from a server that accepts ranges is fetched over several connections, segment
  by segment; the segments done are recorded, so a killed run resumes them too. A server that
  ignores ranges gets one plain stream.
- The sha256 is computed as bytes arrive (for segments, in order, as the contiguous prefix
  grows), compared with the expected digest, and only then is the file adopted as a blob. A
  mismatch keeps nothing and names the file, both digests and the source.
- Bytes are stored as the server sent them, never decoded (see http_get): a `.tar.gz`
  labelled `Content-Encoding: gzip` is the `.tar.gz`, in one stream and in segments.
- A 206 body is written where its Content-Range says it starts (http_get.served_span): a span
  that starts before the bytes asked for has its overlap skipped, a span that starts after
  them, lacks a valid Content-Range or states another total is not used (the stream starts
  over; segments fall back to one stream), and a segment never writes past its own end.
- Messages name the source by its display form (credentials as ***), never the request URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from envctl.artifacts import urls
from envctl.artifacts.cache import CHUNK, Cache, check_free_space, file_hash
from envctl.artifacts.http_get import READ_ERRORS, RETRIES, TIMEOUT, full_size, probe, read_raw, request, served_span
from envctl.errors import FetchError
from envctl.fs_errors import is_path_error, naming

SEGMENT = 16 << 20
PARALLEL_THRESHOLD = 64 << 20
__all__ = ["Downloader", "RemoteFile", "FetchError", "RETRIES", "TIMEOUT"]


@dataclass(frozen=True)
class RemoteFile:
    path: str  # where it goes inside the artifact ("" for a single-file artifact)
    url: str = field(repr=False)  # as requested: may carry signed query values
    display: str  # the source as a user may see it (no credentials)
    size: int | None = None
    sha256: str | None = None
    headers: dict = field(default_factory=dict, compare=False, repr=False)  # e.g. Authorization
    auth: tuple | None = field(default=None, compare=False, repr=False)
    identity: str | None = None  # what names the file across re-signed links (urls.identity); default the URL's
    # (variable, endpoint) of a mirror the file should come from, e.g. ("HF_ENDPOINT", url):
    # a redirect outside it that cannot be followed is named as such.
    stay_within: tuple[str, str] | None = None

    @property
    def name(self) -> str:
        """The file's name for progress lines and messages."""
        return self.path or urls.file_name(self.display)


class _Restart(Exception):
    """The server does not honour ranges for this file: fetch it as one stream from the start."""


class Downloader:
    def __init__(self, cache: Cache, connections: int = 4, progress: Callable[[str, int], Callable[[int], None]] | None = None):
        self.cache = cache
        self.connections = connections
        self.progress = progress
        self._local = threading.local()

    def _session(self) -> requests.Session:
        # One session per thread: connections are reused, and requests sessions are not
        # guaranteed thread-safe.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def fetch(self, remote: RemoteFile) -> tuple[str, int]:
        """Make sure the file is a verified blob; returns (sha256, size)."""
        if remote.sha256 and self.cache.has_blob(remote.sha256):
            return remote.sha256, self.cache.blob(remote.sha256).stat().st_size
        # Keyed by identity, not by the request URL: a re-signed link resumes the same bytes.
        part = self.cache.partial(f"{remote.identity or urls.identity(remote.url)}|{remote.sha256 or ''}")
        # One download into a partial file at a time: an artifact and the image tarball can be
        # one file (one URL), downloaded by `up` at once (the artifact steps beside the image
        # step, envctl/apply.py), or by two envctl processes; each fetch holds a lock of its own
        # kind (an artifact's, a tarball's), not this file's. The second then finds the blob.
        with self.cache.locked(f"partial:{part.name}"):
            if remote.sha256 and self.cache.has_blob(remote.sha256):
                return remote.sha256, self.cache.blob(remote.sha256).stat().st_size
            return self._fetch(remote, part)

    def _fetch(self, remote: RemoteFile, part: Path) -> tuple[str, int]:
        meta_path = part.with_suffix(".json")
        meta = _read_json(meta_path)
        probed = probe(self._session(), remote)
        size, etag, ranges = probed.size if probed.size is not None else remote.size, probed.etag, probed.ranges
        parallel = bool(size and ranges and size >= PARALLEL_THRESHOLD and self.connections > 1)
        mode = "parallel" if parallel else "stream"
        if meta.get("etag") != etag or meta.get("size") != size or meta.get("mode") != mode:
            # Not the file (or not the layout) the partial bytes came from: start over.
            part.unlink(missing_ok=True)
            meta = {"url": remote.display, "etag": etag, "size": size, "mode": mode, "segments": []}
        _write_json(meta_path, meta)
        if size:
            check_free_space(self.cache.root, size - (part.stat().st_size if part.exists() and mode == "stream" else 0), remote.display)
        advance = self.progress(remote.name, size or 0) if self.progress else None
        try:
            if parallel:
                digest = self._parallel(remote, part, meta_path, meta, size, etag, advance)
            else:
                digest, size = self._stream(remote, part, size, etag, ranges, advance)
        except _Restart:
            part.unlink(missing_ok=True)
            _write_json(meta_path, {**meta, "mode": "stream", "segments": []})
            digest, size = self._stream(remote, part, size, etag, False, advance)
        actual_size = part.stat().st_size if part.exists() else 0
        if size is not None and actual_size != size:
            raise FetchError(f"{remote.display}: got {actual_size} bytes of {size}; run again to resume")
        if remote.sha256 and digest != remote.sha256:
            part.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            label = (f"; the server labelled them Content-Encoding: {probed.encoding} and envctl keeps bytes as sent"
                     if probed.encoding else "")
            raise FetchError(
                f"{remote.name}: sha256 {digest} does not match the expected {remote.sha256} "
                f"(source {remote.display}{label}); the download was discarded",
                hint="if the publisher changed the file on purpose, update the digest (envctl lock); otherwise try another mirror",
            )
        self.cache.adopt(part, digest)
        meta_path.unlink(missing_ok=True)
        return digest, actual_size

    def _request(self, method: str, remote: RemoteFile, headers: dict | None = None, stream: bool = False) -> requests.Response:
        return request(self._session(), method, remote, headers, stream)

    # -- one stream ------------------------------------------------------------------------
    def _stream(self, remote, part: Path, size, etag, ranges: bool, advance) -> tuple[str, int | None]:
        """Fetch the rest of the file as one stream; returns (sha256, size as the server states it)."""
        offset = part.stat().st_size if part.exists() else 0
        if offset and (not ranges or (size is not None and offset > size)):
            # The server cannot resume, or the partial is longer than the file (bytes glued on
            # by an older envctl): the prefix cannot be trusted to line up.
            offset = 0
            part.unlink()
        digest = file_hash(part) if offset else hashlib.sha256()
        if offset:
            if advance:
                advance(offset)
        for _attempt in range(RETRIES):
            if size is not None and offset >= size:
                break
            headers = {"Range": f"bytes={offset}-", **({"If-Range": etag} if etag else {})} if offset else {}
            response = self._request("GET", remote, headers, stream=True)
            stated = full_size(response)
            span = served_span(response) if offset else None
            if offset and (span is None or not span[0] <= offset <= span[1]
                           or (stated is not None and size is not None and stated != size)):
                # A full body instead of the tail, a span that does not reach the missing bytes,
                # or another file's tail: start over.
                response.close()
                part.unlink(missing_ok=True)
                digest, offset, size = hashlib.sha256(), 0, None
                continue
            skip = offset - span[0] if span else 0  # a span that starts early: its overlap is had
            if stated is not None:
                size = stated  # what this body says beats the probe (a HEAD may describe another variant)
            whole = False
            try:
                with open(part, "ab") as handle:
                    for block in read_raw(response, CHUNK):
                        if skip:
                            block, skip = block[skip:], max(0, skip - len(block))
                        handle.write(block)
                        digest.update(block)
                        offset += len(block)
                        if advance:
                            advance(len(block))
                whole = True
            except READ_ERRORS as exc:
                if is_path_error(exc):  # the disk (full, read-only), not the connection: no retry helps
                    raise naming(exc, part) from None
                # dropped mid-body: ask again for the rest
            finally:
                response.close()
            if size is None:
                if whole:
                    break  # no length stated (chunked): the body's proper end is the file's end
                continue
            if offset >= size:
                break
        return digest.hexdigest(), size

    # -- several connections ----------------------------------------------------------------
    def _parallel(self, remote, part: Path, meta_path: Path, meta: dict, size: int, etag, advance) -> str:
        count = (size + SEGMENT - 1) // SEGMENT
        done = set(meta.get("segments", []))
        # Bytes written from the start of each unfinished segment, recorded as they land, so
        # that a killed run loses at most the last few MiB per connection, not whole segments.
        progress = {int(k): v for k, v in (meta.get("progress") or {}).items()}
        if not part.exists() or part.stat().st_size != size:
            with open(part, "ab") as handle:
                handle.truncate(size)
        condition = threading.Condition()
        failures: list[BaseException] = []

        def record() -> None:
            _write_json(meta_path, {**meta, "segments": sorted(done), "progress": progress})

        def fetch_segment(index: int) -> None:
            first, end = index * SEGMENT, min(size, (index + 1) * SEGMENT) - 1
            start = first + progress.get(index, 0)
            for _attempt in range(RETRIES):
                response = self._request("GET", remote, {"Range": f"bytes={start}-{end}", **({"If-Range": etag} if etag else {})}, stream=True)
                span = served_span(response)
                if span is None or not span[0] <= start <= span[1] or span[2] not in (None, size):
                    response.close()
                    raise _Restart()  # ranges not honoured as asked: one plain stream instead
                skip = start - span[0]
                position, recorded = start, start
                try:
                    with open(part, "r+b") as handle:
                        handle.seek(start)
                        for block in read_raw(response, CHUNK):
                            if skip:
                                block, skip = block[skip:], max(0, skip - len(block))
                            block = block[:end + 1 - position]  # never into the next segment
                            if not block:
                                if position > end:
                                    break
                                continue
                            handle.write(block)
                            position += len(block)
                            if advance:
                                advance(len(block))
                            if position - recorded >= 4 * CHUNK:
                                handle.flush()
                                with condition:
                                    progress[index] = position - first
                                    record()
                                recorded = position
                except READ_ERRORS as exc:
                    if is_path_error(exc):  # the disk, not the connection: what was recorded stays
                        raise naming(exc, part) from None
                finally:
                    response.close()
                if position == end + 1:
                    with condition:
                        done.add(index)
                        progress.pop(index, None)
                        record()
                        condition.notify_all()
                    return
                with condition:
                    progress[index] = position - first
                    record()
                start = position  # resume within the segment
            raise FetchError(f"{remote.display}: the connection kept dropping; run again to resume")

        def hash_in_order() -> str:
            digest = hashlib.sha256()
            with open(part, "rb") as handle:
                for index in range(count):
                    with condition:
                        while index not in done and not failures:
                            condition.wait(timeout=1)
                        if failures:
                            return ""
                    handle.seek(index * SEGMENT)
                    remaining = min(SEGMENT, size - index * SEGMENT)
                    while remaining:
                        block = handle.read(min(CHUNK, remaining))
                        digest.update(block)
                        remaining -= len(block)
            return digest.hexdigest()

        if advance:
            advance(sum(min(SEGMENT, size - i * SEGMENT) for i in done) + sum(progress.values()))
        with ThreadPoolExecutor(max_workers=self.connections + 1) as pool:
            hasher = pool.submit(hash_in_order)
            futures = [pool.submit(fetch_segment, i) for i in range(count) if i not in done]
            for future in futures:
                try:
                    future.result()
                except BaseException as exc:  # noqa: BLE001 — re-raised below, after the others stop
                    with condition:
                        failures.append(exc)
                        condition.notify_all()
            digest = hasher.result()
        if failures:
            raise failures[0]
        return digest


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
