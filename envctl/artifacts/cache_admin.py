"""Looking after the cache: what is in it, whether it is intact, and what can go."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Mapping, Sequence

from envctl.artifacts.cache import sha256_of
from envctl.artifacts.urls import redact_text
from envctl.regular_file import read_regular_text


def _records(root: Path) -> list[tuple[str, Path, dict]]:
    artifacts = root / "artifacts"
    found = []
    for meta in sorted(artifacts.rglob("*.json")) if artifacts.is_dir() else []:
        try:
            record = json.loads(read_regular_text(meta))
        except (OSError, ValueError):
            continue
        placed = meta.with_suffix("") if meta.name.endswith(".json") else meta
        key = str(placed.relative_to(artifacts))
        found.append((key, placed, record))
    return found


def _blobs(root: Path) -> list[Path]:
    directory = root / "blobs" / "sha256"
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def listing(root: Path) -> tuple[list[dict], int, int]:
    rows = []
    for key, placed, record in _records(root):
        if not placed.exists():
            continue
        files = record.get("files", [])
        # redact_text: a record written before a credential was recognised as one (a token
        # written as a URL's user name) holds the source as it was shown then.
        rows.append({"key": key, "source": redact_text(str(record.get("source", "?"))), "revision": record.get("revision"),
                     "files": len(files), "bytes": sum(f.get("size", 0) for f in files)})
    blobs = _blobs(root)
    return rows, len(blobs), sum(b.stat().st_size for b in blobs)


def verify(root: Path) -> tuple[int, list[str]]:
    """Re-hash every blob. A corrupt blob is removed with every placed artifact made from it, so
    the next fetch downloads it again instead of serving bad bytes."""
    bad_digests, reports = set(), []
    blobs = _blobs(root)
    for blob in blobs:
        if sha256_of(blob) != blob.name:
            bad_digests.add(blob.name)
            blob.unlink()
    for key, placed, record in _records(root):
        spoiled = [f["path"] or key for f in record.get("files", []) if f.get("sha256") in bad_digests]
        if spoiled:
            reports.append(f"{redact_text(str(record.get('source', key)))}: {', '.join(spoiled)} (removed; the next fetch repairs it)")
            _remove(placed)
            placed.with_name(placed.name + ".json").unlink(missing_ok=True)
    return len(blobs), reports


def collect(root: Path, partial_before: float, keep: Mapping[str, Sequence[str]] | None = None
            ) -> tuple[int, int, list[tuple[str, int, Sequence[str]]]]:
    """Remove blobs no placed artifact uses and `keep` does not name, leftover staging
    directories, and partial downloads last touched before `partial_before` (a timestamp).

    `keep`: sha256 → why it stays (cache_keep.named_blobs: image tarballs and artifacts that a
    manifest names). Returns (items removed, bytes freed, [(sha256, bytes, why)] for each blob
    kept only because of `keep`)."""
    keep = keep or {}
    used = {f.get("sha256") for _, placed, record in _records(root) if placed.exists() for f in record.get("files", [])}
    removed = freed = 0
    kept: list[tuple[str, int, Sequence[str]]] = []
    for blob in _blobs(root):
        if blob.name in used:
            continue
        if blob.name in keep:
            kept.append((blob.name, blob.stat().st_size, keep[blob.name]))
            continue
        freed += blob.stat().st_size
        blob.unlink()
        removed += 1
    artifacts = root / "artifacts"
    for leftover in artifacts.rglob(".*.tmp") if artifacts.is_dir() else []:
        freed += _size(leftover)
        _remove(leftover)
        removed += 1
    partial = root / "partial"
    for item in partial.iterdir() if partial.is_dir() else []:
        if item.stat().st_mtime < partial_before:
            freed += item.stat().st_size
            item.unlink()
            removed += 1
    return removed, freed, kept


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        os.chmod(path, 0o644)
        path.unlink()
