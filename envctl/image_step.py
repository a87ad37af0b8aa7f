"""Making sure the manifest's image is on the engine, with the expected ID, doing as little as
possible: nothing when it is there; a tag when the image is there under another name; a load
or a build only when the image itself is missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from docker.errors import APIError, BuildError, ImageNotFound

from envctl.artifacts.sources import Source
from envctl.images import IdentityCache, ImageError, context_digest, identify, load_tarball
from envctl.plan import EnsureImage

LABEL_CONTEXT = "io.envctl.context-digest"


@dataclass(frozen=True)
class ImageOutcome:
    action: str  # present | tagged | loaded | built
    image_id: str
    note: str | None = None  # e.g. a tag that moved


Progress = Callable[[str, int], Callable[[int], None]]  # (label, total bytes) → advance(n)


def _get(client, ref: str):
    try:
        return client.images.get(ref)
    except ImageNotFound:
        return None
    except APIError as exc:
        raise ImageError(f"the engine could not look up {ref}: {exc.explanation or exc}") from None


def ensure_image(client, step: EnsureImage, source: Source | None, identities: IdentityCache, progress: Progress | None = None,
                 socket_path: str | None = None, loader=None) -> ImageOutcome:
    """`socket_path`: the engine's local unix socket, when it has one (tarballs are then sent
    with sendfile). `loader(tarball, advance, sha256)`: how a tarball reaches an engine that is
    not local (pushed to the remote host, loaded there)."""
    current = _get(client, step.ref)
    if step.origin == "build":
        return _ensure_built(client, step, current, identities.file.parent / "contexts.json")
    expected = step.expected_id
    tarball: Path | None = None
    if step.origin == "tarball" and source is not None:
        tarball = Path(source.location)
        if not tarball.is_file():
            raise ImageError(f"image {step.ref}: no tarball at {tarball}")
        advance = progress(f"reading {tarball.name}", tarball.stat().st_size) if progress else None
        identity = identify(tarball, identities, need_sha256=step.sha256 is not None or loader is not None, progress=advance)
        if step.sha256 and identity.sha256 != step.sha256:
            raise ImageError(
                f"{tarball} has sha256 {identity.sha256}, the manifest expects {step.sha256}; nothing was loaded",
                hint="download the tarball again, or update image.tarball.sha256 if the vendor published a new one",
            )
        if step.ref not in identity.repo_tags:
            raise ImageError(
                f"{tarball} holds {', '.join(identity.repo_tags) or 'an untagged image'}, not {step.ref}; nothing was loaded",
                hint="fix image.ref, or point image.tarball.source at the right tarball",
            )
        if expected and identity.image_id != expected:
            raise ImageError(f"{tarball} holds image {identity.image_id}, the manifest pins {expected}; nothing was loaded")
        expected = identity.image_id

    if current is not None and (expected is None or current.id == expected):
        return ImageOutcome("present", current.id)
    moved = f"{step.ref} pointed at {current.id}; now at {expected}" if current is not None else None
    if expected is not None:
        existing = _get(client, expected)
        if existing is not None:
            existing.tag(step.ref)
            return ImageOutcome("tagged", existing.id, moved)
    if tarball is None:
        if current is not None and expected is not None:
            raise ImageError(f"{step.ref} on this host is {current.id}, the manifest pins {expected}",
                             hint="load the pinned image (give image.tarball) or update image.id")
        how = step.obtain or "give image.tarball.source (a docker save tarball) or image.build in the manifest"
        raise ImageError(f"image {step.ref} is not on this host; envctl pulls from no registry", hint=how)

    advance = progress(f"loading {tarball.name}", tarball.stat().st_size) if progress else None
    if loader is not None:
        loader(tarball, advance, identity.sha256)
    else:
        load_tarball(client, tarball, advance, socket_path)
    loaded = _get(client, step.ref)
    if loaded is None or loaded.id != expected:
        found = loaded.id if loaded is not None else "nothing"
        raise ImageError(f"after loading {tarball}, {step.ref} is {found}, expected {expected}")
    if moved:
        moved += " (the old image is kept, untagged unless other tags name it)"
    return ImageOutcome("loaded", loaded.id, moved)


def _ensure_built(client, step: EnsureImage, current, memo: Path) -> ImageOutcome:
    context = Path(step.source)
    digest = context_digest(context, memo)
    if current is not None and (current.labels or {}).get(LABEL_CONTEXT) == digest:
        return ImageOutcome("present", current.id)
    try:
        image, _ = client.images.build(path=str(context), tag=step.ref, rm=True, labels={LABEL_CONTEXT: digest})
    except BuildError as exc:
        tail = "\n".join(str(line.get("stream", "")).rstrip() for line in list(exc.build_log)[-10:] if line.get("stream"))
        raise ImageError(f"building {step.ref} from {context} failed: {exc.msg}\n{tail}") from None
    except APIError as exc:
        raise ImageError(f"building {step.ref} from {context} failed: {exc.explanation or exc}") from None
    return ImageOutcome("built", image.id)
