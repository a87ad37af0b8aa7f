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
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

from envctl.atomic import write_text_atomic
from envctl.tarballs import CountingReader, ImageError, SavedImage, TarballIdentity, compression_of, decompressing, read_identity

__all__ = ["ImageError", "TarballIdentity", "IdentityCache", "identify", "load_tarball", "loaded_ids", "read_identity",
           "context_digest"]

CHUNK = 1 << 20
# What every engine envctl supports takes as it is: Docker 20.10 refuses zstd ("invalid tar
# header") and Docker's xz support runs an `xz` binary the host may lack, so those (and bzip2,
# for one rule) are decompressed here and streamed to the engine as a plain tar.
ENGINE_TAKES = ("none", "gzip")
_CACHE_VERSION = 5  # entries written before every platform of a multi-platform image was read are read again


class IdentityCache:
    """Remembered tarball identities, keyed by resolved path and checked against size and mtime."""

    def __init__(self, file: Path):
        self.file = file

    def _read(self) -> dict:
        try:
            return json.loads(self.file.read_text())
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


def _chunks(path: Path, progress: Callable[[int], None] | None, compression: str = "none") -> Iterator[bytes]:
    """The bytes the engine is sent: the file itself, or its decompressed tar stream."""
    with open(path, "rb") as raw:
        handle = raw if compression in ENGINE_TAKES else decompressing(CountingReader(raw, progress), compression)
        if compression not in ENGINE_TAKES:
            progress = None  # counted on the compressed side
        while True:
            data = handle.read(CHUNK)
            if not data:
                return
            if progress:
                progress(len(data))
            yield data


def load_tarball(client, path: Path, progress: Callable[[int], None] | None = None, socket_path: str | None = None) -> list[str]:
    """Stream a tarball into the engine; memory stays flat whatever its size. On a local unix
    socket the file goes to the engine with sendfile(2): no copy through Python, which keeps
    envctl as fast as `docker load`. Returns the engine's "Loaded image" lines. Raises
    ImageError with the engine's reason. A compression the engine may not take (ENGINE_TAKES) is
    decompressed here on the way, without a temporary copy."""
    compression = compression_of(path)
    if socket_path is not None and compression in ENGINE_TAKES:
        from envctl.engine import translated  # an engine that goes away is an envctl error, as on the API path

        events = translated(_load_by_sendfile(socket_path, client.api.api_version, path, progress), "images.load",
                            f"unix://{socket_path}")
    else:
        events = _load_by_api(client, path, progress, compression)
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


def _load_by_api(client, path: Path, progress, compression: str) -> Iterator[dict]:
    from docker.errors import APIError

    try:
        yield from client.api.load_image(_chunks(path, progress, compression))
    except APIError as exc:
        raise ImageError(f"the engine could not load {path}: {exc.explanation or exc}", hint="the tarball may be corrupt: download it again") from None


def _load_by_sendfile(socket_path: str, api_version: str, path: Path, progress) -> Iterator[dict]:
    size = path.stat().st_size
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection, open(path, "rb") as handle:
        connection.connect(socket_path)
        connection.sendall(
            f"POST /v{api_version}/images/load HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        offset = 0
        try:
            while offset < size:
                sent = os.sendfile(connection.fileno(), handle.fileno(), offset, min(CHUNK * 8, size - offset))
                if sent == 0:
                    raise ImageError(f"{path} shrank while it was being loaded")
                offset += sent
                if progress:
                    progress(sent)
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


def context_digest(context: Path, memo: Path | None = None) -> str:
    """sha256 over every file's relative path and content in a build context. With `memo`, each
    file's digest is remembered by (size, mtime), so an unchanged context of large wheels costs
    a few stat calls, not a full read."""
    known = {}
    if memo is not None:
        try:
            known = json.loads(memo.read_text())
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
