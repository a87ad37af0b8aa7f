"""What `envctl cache gc` keeps because a manifest still names it.

A placed artifact keeps its own blobs. An image tarball is a blob with no placed artifact, so
without this list gc deleted every downloaded tarball, and the next `up` downloaded gigabytes
again. Each manifest envctl can find (the same roots as `envctl ls`: ENVCTL_MANIFEST_PATH,
./manifests, the user's directory, the shipped ones), in each of its variants, names blobs by:

  - image.tarball.sha256, or the sha256 its lock file records for the tarball;
  - for a tarball behind a URL without either, the blob that URL gave when `up` downloaded it
    (Cache.remember_source);
  - an artifact's sha256, and the files its lock file records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from envctl.artifacts.cache import Cache
from envctl.errors import EnvctlError, ManifestError
from envctl.manifest import discovery
from envctl.manifest.loader import Loaded, load
from envctl.manifest.yamlsrc import parse_file


@dataclass
class Named:
    """sha256 → why it is kept ("image tarball of chatglm3-mlu"), and the manifests that could
    not be read (their blobs are unknown, so gc says so rather than pretending)."""

    reasons: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def add(self, sha256: str | None, reason: str) -> None:
        if sha256 and reason not in self.reasons.setdefault(sha256, []):
            self.reasons[sha256].append(reason)


def named_blobs(cache: Cache, environ: Mapping[str, str], cwd: Path | None = None) -> Named:
    """The blobs the manifests found from `environ` and `cwd` name. Never raises for a manifest
    that cannot be read: it is listed in `unreadable` with its first problem."""
    named = Named()
    roots = discovery.search_roots(environ, cwd)
    for found in discovery.list_manifests(roots):
        for variant in _variants(found.path) or [None]:
            label = found.name + (f":{variant}" if variant else "")
            try:
                loaded = load(found.path, environ=environ, roots=roots, variant=variant)
            except EnvctlError as error:
                problems = error.problems if isinstance(error, ManifestError) else []
                first = str(problems[0]) if problems else str(error)
                named.unreadable.append(f"{label} ({first})")
                continue
            _image(named, cache, loaded, f"image tarball of {label}")
            _artifacts(named, loaded, label)
    return named


def _variants(path: Path) -> list[str]:
    document, _ = parse_file(path)
    data = document.data if document is not None else None
    variants = data.get("variants") if isinstance(data, dict) else None
    return sorted(variants) if isinstance(variants, dict) else []


def _image(named: Named, cache: Cache, loaded: Loaded, reason: str) -> None:
    tarball = loaded.manifest.image.tarball
    if tarball is None:
        return
    pinned = [tarball.sha256] + [f.sha256 for f in (loaded.image_lock.files if loaded.image_lock else ())]
    for sha256 in pinned:
        named.add(sha256, reason)
    source = loaded.image_source
    if not any(pinned) and source is not None and source.kind in ("http", "ftp"):
        named.add(cache.source_blob(source.identity()), reason)


def _artifacts(named: Named, loaded: Loaded, label: str) -> None:
    for name, artifact in loaded.manifest.artifacts.items():
        reason = f"artifact {name} of {label}"
        named.add(artifact.sha256, reason)
        locked = loaded.locks.get(name)
        for placed in locked.files if locked else ():
            named.add(placed.sha256, reason)
