"""The artifact cache on a host, shared by every manifest and container.

    <cache>/blobs/sha256/<hex>        verified file contents, stored once (read-only)
    <cache>/partial/<id>.part|.json   downloads in progress, kept across runs to resume
    <cache>/artifacts/<key>           placed artifacts: a file, or a tree of hard links to blobs;
                                      this is what containers mount
    <cache>/artifacts/<key>.json      what was placed there (files, sizes, digests, revision)
    <cache>/git/...                   bare repositories for git sources
    <cache>/locks/                    one lock file per artifact being fetched
    <cache>/sources/<hash>.json       which blob a download gave (keyed by a hash of the source's
                                      identity), so that `cache gc` keeps an image tarball that a
                                      manifest names by URL without a sha256

A file is a blob only once its sha256 is verified; a placed artifact appears (by rename) only
once every file in it is a blob. So a partial file is never taken for a whole one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from envctl.atomic import place_once, write_text_atomic
from envctl.errors import FetchError
from envctl.locks import file_lock
from envctl.regular_file import read_regular_text

CHUNK = 1 << 20


@dataclass(frozen=True)
class PlacedFile:
    path: str  # relative path inside the artifact ("" for a single-file artifact)
    size: int
    sha256: str


def on_disk(record: dict) -> list[dict]:
    """The files the record's entry holds on disk: its `tree` for an extracted archive (whose
    `files` name the archive as fetched, what a pin or lock refers to), else its `files`."""
    return record.get("tree", record.get("files", []))


def intact(record: dict, sizes: dict[str, int]) -> bool:
    """Whether every file the record's entry holds (on_disk) is present with its size; `sizes`:
    relative path ("" for a single-file artifact) → bytes, as found on disk. A size check, not a
    hash: it catches a file deleted or cut short in the cache, at the cost of a stat per file."""
    return all(sizes.get(f.get("path", "")) == f.get("size") for f in on_disk(record))


class Cache:
    def __init__(self, root: Path):
        self.root = root

    # -- blobs ---------------------------------------------------------------------------
    def blob(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256

    def has_blob(self, sha256: str | None, size: int | None = None) -> bool:
        """Whether the blob is there (with `size` bytes, when given: a blob is a hard link of
        the placed files, so one cut short in the cache shrinks it too)."""
        if not sha256 or not self.blob(sha256).is_file():
            return False
        return size is None or self.blob(sha256).stat().st_size == size

    def adopt(self, verified_file: Path, sha256: str) -> Path:
        """Move a file whose content was verified to hash to `sha256` into the blob store. A
        blob already there is kept (a host's push may be reading it: envctl/atomic.place_once),
        unless it was cut short."""
        target = self.blob(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(verified_file, 0o444)
        if target.is_file() and target.stat().st_size != verified_file.stat().st_size:
            os.replace(verified_file, target)
        else:
            place_once(verified_file, target)
        return target

    def remember_source(self, identity: str, sha256: str) -> None:
        """Record that the source with `identity` (Source.identity(): no credentials) gave the
        blob `sha256`. Only a hash of the identity is written: a URL's query may be private."""
        record = self._source_record(identity)
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, json.dumps({"sha256": sha256}) + "\n")

    def source_blob(self, identity: str) -> str | None:
        """The sha256 of the blob the source with `identity` last gave, or None when unknown."""
        try:
            sha256 = json.loads(read_regular_text(self._source_record(identity))).get("sha256")
        except (OSError, ValueError, AttributeError):
            return None
        return sha256 if isinstance(sha256, str) else None

    def _source_record(self, identity: str) -> Path:
        return self.root / "sources" / (hashlib.sha256(identity.encode()).hexdigest() + ".json")

    # -- partial downloads ---------------------------------------------------------------
    def partial(self, identity: str) -> Path:
        """The partial file for a download identified by `identity` (its URL and expected digest)."""
        name = hashlib.sha256(identity.encode()).hexdigest()[:32]
        directory = self.root / "partial"
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{name}.part"

    # -- placed artifacts -----------------------------------------------------------------
    def placed(self, key: str) -> Path:
        return self.root / "artifacts" / key

    def intact_at(self, key: str, record: dict) -> bool:
        """Whether artifacts/<key> holds every file `record` lists, with its size (see intact)."""
        placed = self.placed(key)
        sizes = {}
        for listed in on_disk(record):
            path = listed.get("path", "")
            try:
                sizes[path] = (placed / path if path else placed).stat().st_size
            except (OSError, TypeError):
                pass
        return intact(record, sizes)

    def placed_record(self, key: str) -> dict | None:
        try:
            return json.loads(read_regular_text(self.root / "artifacts" / f"{key}.json"))
        except (OSError, ValueError):
            return None

    def place(self, key: str, files: list[PlacedFile], single_file: bool, record: dict) -> Path:
        """Assemble an artifact from blobs (hard links, so no bytes are copied) and make it
        appear atomically at artifacts/<key>."""
        final = self.placed(key)
        staging = final.parent / f".{final.name}.{os.getpid()}.tmp"
        _remove(staging)
        staging.parent.mkdir(parents=True, exist_ok=True)
        if single_file:
            _link_or_copy(self.blob(files[0].sha256), staging)
        else:
            staging.mkdir()
            for file in files:
                destination = staging / file.path
                destination.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(self.blob(file.sha256), destination)
        return self.publish(key, staging, files, record)

    def publish(self, key: str, staging: Path, files: list[PlacedFile], record: dict) -> Path:
        """Rename a fully built file or tree into place, then write its record. `record` may
        hold a `tree` (what an extracted archive placed: see tree_of)."""
        final = self.placed(key)
        _remove(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, final)
        meta = final.parent / f"{final.name}.json"
        write_text_atomic(meta, json.dumps({**record, "files": [asdict(f) for f in files]}, indent=1, ensure_ascii=False))
        return final

    def locked(self, key: str):
        """One fetch of an artifact at a time on this host; others wait, then find it done."""
        return file_lock(self.root / "locks" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.lock")


def tree_of(directory: Path) -> list[dict]:
    """Every regular file under `directory` as {path, size, sha256} (relative paths, sorted):
    the `tree` of an extracted archive's record, which intact checks and a push sends."""
    return [{"path": str(p.relative_to(directory)), "size": p.stat().st_size, "sha256": sha256_of(p)}
            for p in sorted(directory.rglob("*")) if p.is_file() and not p.is_symlink()]


def file_hash(path: Path):
    """A sha256 object fed with the file's bytes: callers that resume a download go on feeding it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest


def sha256_of(path: Path) -> str:
    return file_hash(path).hexdigest()


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that holds (or will hold) `path`."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another filesystem: copy instead
        shutil.copyfile(source, destination)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_free_space(root: Path, needed: int, what: str) -> None:
    """Refuse before downloading when the cache's disk cannot hold what is missing."""
    free = free_bytes(root)
    if needed > free:
        raise FetchError(f"{what}: needs {needed / (1 << 30):.1f} GiB, only {free / (1 << 30):.1f} GiB free at {root}",
                         hint="free space, or point ENVCTL_CACHE at a larger disk")
