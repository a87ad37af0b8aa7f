"""What a plan knows about a pulled image (`image: {ref: ..., pull: true}`): the digest it is
pinned to (the ref's `@sha256:`, else the one `envctl lock` recorded), whether the engine holds
that image, which mirror a pull goes through, and how much it would download.

Whether the engine holds the pinned image is told on both of Docker's image stores: the classic
store keeps the manifest digest in RepoDigests (`repository@sha256:...`, one per repository the
image was pulled from, a mirror's included); the containerd store names the image by that digest
(.Id is the manifest or index digest, envctl/image_identity.py) and lists RepoDigests too.
Nothing is asked of the registry when the image is there: `up` of a present image moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from envctl.registry_refs import ImageName, mirror_prefix, parse, through_mirror


@dataclass(frozen=True)
class Mirror:
    prefix: str  # the mirror's repository prefix (m.daocloud.io/quay.io)
    origin: str  # where it was configured ("FILE:LINE", "inventory FILE:LINE (host lab1)")


@dataclass(frozen=True)
class RegistryView:
    """`image`: the canonical name with the pinned digest (None when not pinned); `pinned_by`:
    "ref" | "lock" | None; `mirror`: the configured mirror, when there is one; `digest` and
    `bytes`: what the registry serves for it (the manifest digest, and the compressed size of
    this platform's layers), None when not asked or not told; `problem`: why not."""

    image: ImageName
    pinned_by: str | None
    mirror: Mirror | None
    present_id: str | None = None  # the engine's .Id of the pinned image when it holds it under the ref
    found_id: str | None = None  # ... or under another name (the mirror's, name@digest): a tag is enough
    digest: str | None = None
    bytes: int | None = None
    asked: str | None = None  # the registry that answered (the mirror's host, or the image's own)
    problem: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def mirrored(self) -> ImageName | None:
        return through_mirror(self.image, self.mirror.prefix) if self.mirror else None


def pinned_image(ref: str, image_lock) -> tuple[ImageName, str | None]:
    """The image named by `ref`, with the digest of the ref or else of the lock entry."""
    image = parse(ref)
    if image.digest:
        return image, "ref"
    if image_lock is not None and getattr(image_lock, "revision", None):
        return image.with_digest(image_lock.revision), "lock"
    return image, None


def mirror_for(image: ImageName, routes: Mapping) -> Mirror | None:
    """`routes`: registry host → Route(url, origin) (envctl/mirror_routes.py) or → prefix text."""
    for host in routes:
        if mirror_prefix(image, {host: "x"}):
            route = routes[host]
            return Mirror(getattr(route, "url", route), getattr(route, "origin", "configuration"))
    return None


def engine_holds(client, image: ImageName, mirror: ImageName | None, records=None) -> tuple[str | None, str | None]:
    """(.Id of the image the ref's tag names when it is the pinned one, .Id of the pinned image
    found under another name). Unpinned: the tag's image is taken as it is. `records`:
    envctl/image_identity.EngineImages, whose records know the config digest of a manifest
    digest pulled here before: an image pushed to an air-gapped host by `docker save` keeps no
    RepoDigests, and is known by that config digest."""
    tagged = _inspect(client, image.tagged)
    if tagged is not None and (image.digest is None or has_digest(tagged, image.digest)):
        return tagged["Id"], None
    if tagged is not None and records is not None:
        from envctl.image_identity import EngineImage

        config = records.recorded_config(image.digest)
        if config and records.matches(EngineImage(tagged["Id"]), config):
            return tagged["Id"], None
    if image.digest is None:
        return None, None
    for candidate in (f"{image.name}@{image.digest}", f"{mirror.name}@{image.digest}" if mirror else None):
        found = _inspect(client, candidate) if candidate else None
        if found is not None and has_digest(found, image.digest):
            return None, found["Id"]
    return None, None


def has_digest(attrs: dict, digest: str) -> bool:
    """Whether an image (`docker inspect` attributes) is the one of manifest digest `digest`."""
    return attrs.get("Id") == digest or any(str(d).rpartition("@")[2] == digest for d in attrs.get("RepoDigests") or ())


def _inspect(client, reference: str) -> dict | None:
    from docker.errors import APIError, ImageNotFound

    from envctl.images import ImageError

    try:
        return client.api.inspect_image(reference)
    except ImageNotFound:
        return None
    except APIError as exc:
        if exc.status_code in (400, 404):
            return None
        raise ImageError(f"the engine could not look up {reference}: {exc.explanation or exc}") from None


def observe_pull(host, loaded, engine, environ=None) -> RegistryView:
    """observe() for a manifest on `host` (this machine or an SSH host: its mirrors, from the
    inventory, over this machine's; envctl/mirror_routes.py)."""
    from envctl.image_identity import RECORDS, EngineImages
    from envctl.mirror_routes import here, of_host
    from envctl.paths import cache_dir

    # An air-gapped host (fetch: push) gets what this machine pulls, through this machine's mirrors.
    routes = (here(environ) if getattr(host, "fetch_mode", None) == "push" else of_host(host, environ)).registries
    records = EngineImages(engine, cache_dir(environ) / "state" / RECORDS) if engine is not None else None
    return observe(loaded.manifest.image.ref, loaded.image_lock, routes, engine, records=records)


def observe(ref: str, image_lock, routes: Mapping, client, platform=None, records=None, resolve: bool = True) -> RegistryView:
    """The registry side of the plan. `client`: the engine (None: not asked, nothing decided);
    `platform`: the engine's (envctl/image_platforms.py), for the size of a multi-platform
    image. The registry is asked only when the engine lacks the image (and `resolve`)."""
    from envctl.registry_api import RegistryError, resolve_through

    image, pinned_by = pinned_image(ref, image_lock)
    mirror = mirror_for(image, routes)
    view = RegistryView(image, pinned_by, mirror)
    if client is None:
        return view
    present_id, found_id = engine_holds(client, image, view.mirrored, records)
    if present_id or found_id or not resolve:
        return RegistryView(image, pinned_by, mirror, present_id, found_id)
    notes: list[str] = []
    try:
        if platform is None:
            from envctl.image_platforms import of_engine

            platform = of_engine(client)
        resolved = resolve_through(image, platform, view.mirrored, notes.append)
    except RegistryError as exc:
        return RegistryView(image, pinned_by, mirror, problem=exc.message, notes=tuple(notes))
    problem = None
    if resolved.layer_bytes is None:
        problem = f"the registry's index names no manifest for {platform}"
    if image.digest and resolved.digest != image.digest:
        problem = f"{resolved.registry} serves {resolved.digest} for it, not the pinned {image.digest}"
    return RegistryView(image, pinned_by, mirror, None, None, resolved.digest, resolved.layer_bytes, resolved.registry,
                        problem, tuple(notes))


def pulled_from(view: RegistryView | None, image: ImageName) -> str:
    """The registry reference a pull asks for, as plans show it (the mirror's name when one is
    configured; the canonical name is the ref)."""
    source = view.mirrored if view is not None and view.mirror else image
    return f"{source.name}@{image.digest}" if image.digest else source.tagged


def pull_lines(step) -> list[str]:
    """The plan's lines about a pulled image (step: envctl/plan.EnsureImage of origin pull):
    where it is pulled from, its pin, the mirror, and how much a pull downloads."""
    from envctl.summary import size_text

    pin = f"pinned {step.digest}" if step.digest else "digest not pinned yet (envctl lock)"
    lines = [f"registry {step.source}, {pin}"]
    if step.mirror:
        lines.append(f"mirror {step.mirror} (set in {step.mirror_from})")
    if step.action in ("pull", "pull+push"):
        lines.append(f"download {size_text(step.bytes)} (compressed layers for this platform)" if step.bytes is not None
                     else "download size unknown (see above)")
    return lines
