"""What envctl's caches hold that a plan depends on: which artifacts are complete and verified
(this machine's cache, and a remote host's), which writable copies are current, the image
tarball's blob, and the sizes the lock file records.

A cache entry counts only when its record names the very source and the pinned digests
(artifacts.fetch.record_matches), and, for a local path, the files it holds now
(artifacts.fetch.source_unchanged): the same tests `fetch` applies, so a plan that says
"cached" is a fetch that will not download.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from envctl.artifacts.cache import Cache
from envctl.artifacts.fetch import pinned_sha256, record_matches, source_unchanged, workspace_copy_current
from envctl.artifacts.sources import artifact_identity, artifact_key
from envctl.manifest.loader import Loaded


@dataclass(frozen=True)
class CacheView:
    cached: frozenset[str] = frozenset()  # artifacts complete in this machine's cache
    copies: frozenset[str] = frozenset()  # `mode: rw` artifacts whose workspace copy is current (on the host)
    sizes: dict = field(default_factory=dict)  # artifact name → bytes, where the lock file says
    tarball_cached: bool = False  # the image tarball is a blob of this machine's cache (or a local file)
    tarball_size: int | None = None  # its bytes, when known (a local file, a cached blob, the lock)
    tarball_path: Path | None = None  # where it is on this machine, when it is
    remote_cached: frozenset[str] | None = None  # on a remote host: artifacts complete in its cache


def _record(cache: Cache, loaded: Loaded, name: str) -> dict | None:
    source = loaded.sources.get(name)
    if source is None:
        return None
    artifact = loaded.manifest.artifacts[name]
    key = artifact_key(source, artifact.subpath, artifact.include)
    record = cache.placed_record(key)
    if record is None or not cache.placed(key).exists() or not cache.intact_at(key, record):
        return None
    locked = loaded.locks.get(name)
    identity = artifact_identity(source, artifact.subpath, artifact.include)
    return record if (record_matches(record, pinned_sha256(artifact, locked), locked, identity)
                      and source_unchanged(source, record)) else None


def view(loaded: Loaded, cache_root: Path, workspace: Path, remote_records=None, remote_copies=None) -> CacheView:
    """`remote_records(name) → dict | None`: the record of an artifact in a remote host's cache
    (None for this machine); `remote_copies(name, record) → bool`: whether the writable copy
    of a `mode: rw` artifact on that host was made from the artifact `record` describes."""
    cache = Cache(cache_root)
    cached, copies, sizes = set(), set(), {}
    remote = set() if remote_records is not None else None
    for name, artifact in loaded.manifest.artifacts.items():
        locked = loaded.locks.get(name)
        if locked is not None:
            sizes[name] = sum(f.size for f in locked.files)
        record = _record(cache, loaded, name)
        if record is not None:
            cached.add(name)
            sizes[name] = sum(int(f.get("size", 0)) for f in record.get("files", []))
        source = loaded.sources.get(name)
        if remote is not None and source is not None:
            there = remote_records(name)
            identity = artifact_identity(source, artifact.subpath, artifact.include)
            if (there is not None and record_matches(there, pinned_sha256(artifact, locked), locked, identity)
                    and source_unchanged(source, there)):  # a local path's copy there: as it is here now
                remote.add(name)
                if artifact.mode == "rw" and remote_copies is not None and remote_copies(name, there):
                    copies.add(name)
        if artifact.mode == "rw" and record is not None and remote is None:
            if workspace_copy_current(record, workspace / "artifacts" / name):
                copies.add(name)
    tarball_path = tarball_here(loaded, cache)
    tarball_size = tarball_path.stat().st_size if tarball_path else (
        loaded.image_lock.files[0].size if loaded.image_lock and loaded.image_lock.files else None)
    return CacheView(frozenset(cached), frozenset(copies), sizes, tarball_path is not None, tarball_size, tarball_path,
                     frozenset(remote) if remote is not None else None)


def tarball_here(loaded: Loaded, cache: Cache) -> Path | None:
    """The image tarball on this machine: a file source, or the cached blob of a pinned digest."""
    source = loaded.image_source
    tarball = loaded.manifest.image.tarball
    if source is None or tarball is None:
        return None
    if source.kind == "file":
        path = Path(source.location)
        return path if path.is_file() else None
    # Only a pinned digest names a blob to use: an unpinned source is asked again (what it
    # serves may have changed), as `up` does.
    sha256 = tarball.sha256 or (loaded.image_lock.files[0].sha256 if loaded.image_lock else None)
    return cache.blob(sha256) if sha256 and cache.has_blob(sha256) else None
