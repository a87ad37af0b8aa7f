"""The lock file: what every artifact source resolved to, recorded once, enforced after.

`envctl lock NAME` writes `manifest.lock` beside the manifest: for each source (keyed by the
source as written, so variants share entries), the commit a ref resolved to and every file's
path, size and sha256. Afterwards `fetch` and `up` fetch exactly that commit and accept only
those bytes; anything else is drift, refused with what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from envctl.atomic import write_text_atomic
from envctl.artifacts.cache import PlacedFile
from envctl.artifacts.urls import redact_text
from envctl.errors import ManifestError, Problem

LOCK_NAME = "manifest.lock"
VERSION = 1


@dataclass(frozen=True)
class Locked:
    source: str
    revision: str | None
    files: tuple[PlacedFile, ...]


def lock_path(manifest_file: Path) -> Path:
    return manifest_file.parent / LOCK_NAME


def read(manifest_file: Path) -> dict[str, Locked]:
    """The lock beside a manifest (empty when there is none). Raises ManifestError when it
    cannot be read: a lock that is silently ignored would defeat its purpose."""
    path = lock_path(manifest_file)
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}; this envctl writes version {VERSION}")
        entries = {}
        for source, entry in (data.get("sources") or {}).items():
            files = tuple(PlacedFile(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in entry.get("files") or [])
            revision = entry.get("revision")
            if revision is not None and not isinstance(revision, str):
                # YAML reads an unquoted all-digit commit as a number (leading zeros lost): refuse
                # it rather than fetch something else. `envctl lock` itself always quotes them.
                raise ValueError(f"the revision of {source} is {type(revision).__name__} {revision!r}, "
                                 f"not text; quote it as written")
            # Keyed as this envctl shows the source (Source.display): a lock written before a
            # credential was recognised as one (a token written as a URL's user name) still pins
            # its source, and the next `envctl lock` writes it without the token.
            shown = redact_text(str(source))
            entries[shown] = Locked(shown, revision, files)
        return entries
    except (OSError, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ManifestError([Problem(str(path), None, None, "", f"unreadable lock file: {exc}")],
                            hint="fix it, or delete it and run `envctl lock` again") from None


def write(manifest_file: Path, entries: dict[str, Locked]) -> Path:
    path = lock_path(manifest_file)
    merged = {**read(manifest_file), **entries}
    data = {
        "version": VERSION,
        "sources": {
            source: {
                **({"revision": entry.revision} if entry.revision else {}),
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in entry.files],
            }
            for source, entry in sorted(merged.items())
        },
    }
    header = "# Written by `envctl lock`: the exact bits every artifact source resolved to. Commit it.\n"
    write_text_atomic(path, header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=200))
    return path
