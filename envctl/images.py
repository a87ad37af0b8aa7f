"""SDK images: what a tarball holds, loading it, building a context, and checking what is there.

A tarball's image ID and tags are read from the tarball itself (`manifest.json` and the image
config, whose sha256 is the image ID), never guessed from its file name. Reading a multi-GB
gzipped tarball means decompressing all of it, so what was read is remembered per
(path, size, mtime) and the next check costs nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import socket
import tarfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

from envctl.atomic import write_text_atomic
from envctl.errors import EnvctlError, EXIT_HOST_NOT_READY

CHUNK = 1 << 20
_SMALL = 4 << 20  # image configs are a few KB; anything larger is a layer


class ImageError(EnvctlError):
    exit_code = EXIT_HOST_NOT_READY


@dataclass(frozen=True)
class TarballIdentity:
    image_id: str  # sha256:<hex of the image config>
    repo_tags: tuple[str, ...]
    size: int
    mtime_ns: int
    sha256: str | None = None  # of the tarball file, when it was computed


class _HashingReader:
    """A file wrapper that hashes every byte read through it (sequential reads only)."""

    def __init__(self, handle, progress: Callable[[int], None] | None):
        self.handle = handle
        self.digest = hashlib.sha256()
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        if self.progress:
            self.progress(len(data))
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _identity_from(manifest: list, digests: dict[str, str], path: Path) -> tuple[str, tuple[str, ...]]:
    if not isinstance(manifest, list) or not manifest or "Config" not in manifest[0]:
        raise ImageError(f"{path} is not a `docker save` tarball (its manifest.json has no image entry)")
    if len(manifest) > 1:
        tags = [t for entry in manifest for t in entry.get("RepoTags") or []]
        raise ImageError(f"{path} holds {len(manifest)} images ({', '.join(tags) or 'untagged'}); envctl expects one per tarball")
    entry = manifest[0]
    config = entry["Config"]
    if config not in digests:
        raise ImageError(f"{path} is incomplete: manifest.json names {config}, which is not in the tarball")
    return "sha256:" + digests[config], tuple(entry.get("RepoTags") or ())


def read_identity(path: Path, with_sha256: bool = False, progress: Callable[[int], None] | None = None) -> TarballIdentity:
    """Read the image ID and tags from a `docker save` tarball (.tar or .tar.gz). With
    `with_sha256`, the whole file is read once and its sha256 computed on the way. Raises
    ImageError for anything that is not a complete, readable image tarball."""
    stat = path.stat()
    gz = _is_gzip(path)
    try:
        if not gz and not with_sha256:
            # Uncompressed: tarfile reads the headers and seeks over layer data, so even a
            # multi-GB tarball is identified in milliseconds.
            with tarfile.open(path, "r:") as archive:
                manifest, digests = None, {}
                for member in archive:
                    if not member.isfile():
                        continue
                    if member.name == "manifest.json":
                        manifest = json.load(archive.extractfile(member))
                    elif member.size <= _SMALL:
                        digests[member.name] = hashlib.sha256(archive.extractfile(member).read()).hexdigest()
            sha = None
        else:
            with open(path, "rb") as raw:
                reader = _HashingReader(raw, progress)
                with tarfile.open(fileobj=reader, mode="r|*") as archive:
                    manifest, digests = None, {}
                    for member in archive:
                        if not member.isfile():
                            continue
                        data = archive.extractfile(member)
                        if member.name == "manifest.json":
                            manifest = json.loads(data.read())
                        elif member.size <= _SMALL:
                            digests[member.name] = hashlib.sha256(data.read()).hexdigest()
                reader.drain()
                sha = reader.digest.hexdigest()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImageError(
            f"{path} is not a readable image tarball ({type(exc).__name__}: {exc}); nothing was loaded",
            hint="download it again; a truncated or corrupt file cannot be loaded",
        ) from None
    if manifest is None:
        raise ImageError(f"{path} has no manifest.json: it is not a `docker save` tarball; nothing was loaded")
    image_id, tags = _identity_from(manifest, digests, path)
    return TarballIdentity(image_id, tags, stat.st_size, stat.st_mtime_ns, sha)


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
        return TarballIdentity(entry["image_id"], tuple(entry["repo_tags"]), entry["size"], entry["mtime_ns"], entry.get("sha256"))

    def put(self, path: Path, identity: TarballIdentity) -> None:
        data = self._read()
        data[str(path.resolve())] = asdict(identity)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.file, json.dumps(data, indent=1))


def identify(path: Path, cache: IdentityCache, need_sha256: bool, progress: Callable[[int], None] | None = None) -> TarballIdentity:
    known = cache.get(path, need_sha256)
    if known is not None:
        return known
    identity = read_identity(path, with_sha256=need_sha256, progress=progress)
    cache.put(path, identity)
    return identity


def _chunks(path: Path, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    with open(path, "rb") as handle:
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
    ImageError with the engine's reason."""
    if socket_path is not None:
        events = _load_by_sendfile(socket_path, client.api.api_version, path, progress)
    else:
        events = _load_by_api(client, path, progress)
    loaded = []
    for event in events:
        if "error" in event or "errorDetail" in event:
            detail = (event.get("errorDetail") or {}).get("message") or event.get("error")
            raise ImageError(f"the engine could not load {path}: {detail}", hint="the tarball may be corrupt: download it again")
        text = (event.get("stream") or "").strip()
        if text.startswith("Loaded image"):
            loaded.append(text)
    return loaded


def _load_by_api(client, path: Path, progress) -> Iterator[dict]:
    from docker.errors import APIError

    try:
        yield from client.api.load_image(_chunks(path, progress))
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
