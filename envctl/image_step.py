"""Making sure the manifest's image is on the engine, with the expected ID, doing as little as
possible: nothing when it is there; a tag when the image is there under another name; a load
or a build only when the image itself is missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from envctl import references
from envctl.image_identity import RECORDS, EngineImage, EngineImages
from envctl.tarballs import ImageError, Sha256Mismatch, compression_of, sha256_mismatch

if TYPE_CHECKING:  # annotations only: the observation imports this module for LABEL_CONTEXT (issue 14)
    from envctl.artifacts.sources import Source
    from envctl.images import IdentityCache, TarballIdentity
    from envctl.plan import EnsureImage

LABEL_CONTEXT = "io.envctl.context-digest"


@dataclass(frozen=True)
class ImageOutcome:
    action: str  # present | tagged | loaded | built
    image_id: str
    note: str | None = None  # e.g. a tag that moved


Progress = Callable[[str, int], Callable[[int], None]]  # (label, total bytes) → advance(n)


def _tarball_identity(step: EnsureImage, tarball: Path, identities: IdentityCache, progress, need_sha256: bool,
                      engine: EngineImages) -> TarballIdentity:
    """Read and check the tarball against the manifest before anything is loaded."""
    if not tarball.is_file():
        raise ImageError(f"image {step.ref}: no tarball at {tarball}")
    from envctl.images import identify  # reading a tarball: only when the image comes from one

    advance = progress(f"reading {tarball.name}", tarball.stat().st_size) if progress else None
    # A tarball of several images (`docker save a b`): the one tagged step.ref is the manifest's.
    identity = identify(tarball, identities, need_sha256=need_sha256, progress=advance).image_for(step.ref, step.expected_id)
    if step.sha256 and identity.sha256 is not None and identity.sha256 != step.sha256:
        raise sha256_mismatch(tarball, identity.sha256, step.sha256)
    try:
        return _checked(step, tarball, identity, engine)
    except ImageError:
        if step.sha256 and identity.sha256 is None:  # not read yet: a tarball that is not the pinned one is said so first
            _verify_sha256(step, tarball, identities, progress)
        raise


def _verify_sha256(step: EnsureImage, tarball: Path, identities: IdentityCache, progress) -> None:
    """Read the whole tarball for its sha256 (remembered) and raise when it is not the pinned one."""
    from envctl.images import identify

    advance = progress(f"verifying {tarball.name}", tarball.stat().st_size) if progress else None
    found = identify(tarball, identities, need_sha256=True, progress=advance).sha256
    if found != step.sha256:
        raise sha256_mismatch(tarball, found, step.sha256)


def _checked(step: EnsureImage, tarball: Path, identity: TarballIdentity, engine: EngineImages) -> TarballIdentity:
    """The tarball's identity against the manifest: the image it names, the pinned ID, the platform."""
    if identity.multi_platform and engine.containerd_store():
        # The containerd store loads the whole index and runs its own platform's image; the
        # classic store loads manifest.json, whose config is identity.image_id already.
        identity = identity.for_platform(engine.platform())
    pinned = step.expected_id
    if not identity.repo_tags and pinned is None:
        shown_id = _engine_id(engine, identity)
        raise ImageError(
            f"{tarball} was saved by image ID (`docker save {shown_id[7:19]}`): it names no image, so envctl "
            f"cannot tell that it is {step.ref}; nothing was loaded",
            hint=f"pin it in the manifest (image.id: {shown_id}) and envctl tags it {step.ref} when it loads it, "
                 f"or save it by name: docker save -o FILE {step.ref}",
        )
    if identity.repo_tags and not any(references.same(tag, step.ref) for tag in identity.repo_tags):
        raise ImageError(
            f"{tarball} holds {', '.join(identity.repo_tags)}, not {step.ref}; nothing was loaded",
            hint="fix image.ref, or point image.tarball.source at the right tarball",
        )
    if pinned and pinned not in identity.ids:
        raise ImageError(f"{tarball} holds image {_engine_id(engine, identity)}, the manifest pins {pinned}; nothing was loaded")
    return identity


UNASKED = object()  # ensure_image's `current` when the caller did not look the ref up


def ensure_image(client, step: EnsureImage, source: Source | None, identities: IdentityCache, progress: Progress | None = None,
                 socket_path: str | None = None, loader=None, current: EngineImage | None | object = UNASKED) -> ImageOutcome:
    """`current`: what the engine's ref step.ref names (EngineImages.get: an EngineImage, or None
    when it names nothing), looked up by the caller in this command with nothing loaded, pulled,
    tagged or built since; UNASKED: looked up here.
    `socket_path`: the engine's local unix socket, when it has one (tarballs are then sent
    with sendfile, or read once and hashed on the way while a pinned sha256 is still unchecked). `loader(tarball, advance, identity)`: how a tarball reaches an engine that is
    not local (pushed to the remote host, loaded there); returns the engine's "Loaded image" lines.

    An image on the engine is the wanted one when its ID or its config digest is the tarball's
    (or the pinned) ID, on either image store (envctl/image_identity.py)."""
    engine = EngineImages(client, identities.file.parent / RECORDS)
    # The plan's "load" rests on its own look-ups: the ref and each of the tarball's IDs named no
    # wanted image. When the ref was looked up again just now (`current`), with nothing done in
    # between, the IDs are not asked again (a request each, a round trip on an SSH host; issue
    # 14): the plan's load is done. Should another `up` have loaded the image meanwhile, the load
    # changes nothing (the engine keeps the image and its ID, and the ID is checked after it).
    planned_load = step.action == "load" and current is not UNASKED
    if current is UNASKED:
        current = engine.get(step.ref)
    elif current is not None:
        current = engine.taken(current)
    if step.origin == "build":
        return _ensure_built(client, step, current, identities.file.parent / "contexts.json")
    tarball: Path | None = None
    identity: TarballIdentity | None = None
    if step.origin == "tarball" and source is not None:
        tarball = Path(source.location)
        if current is None and loader is None and socket_path is not None and read_while_loading(tarball, identities) \
                and (step.expected_id is None or engine.get(step.expected_id) is None):
            return _load_reading_identity(client, step, tarball, identities, progress, socket_path, engine)
        # A pinned sha256 is checked in the read that sends the tarball to a local engine
        # (load_tarball holds the file's tail back until the digest is known), not in a whole
        # read of its own before: a compressed tarball's identity read hashes it anyway, an
        # uncompressed one's reads its headers only. A remote loader needs the digest first.
        identity = _tarball_identity(step, tarball, identities, progress, loader is not None, engine)
    unverified = tarball is not None and step.sha256 is not None and identity.sha256 is None
    wanted = identity.ids if identity is not None else (step.expected_id,) if step.expected_id else ()

    def is_wanted(image: EngineImage) -> bool:  # its ID is one of them, or its config digest (read once, remembered)
        return image.id in wanted or engine.config_digest(image) in wanted

    if current is not None and (not wanted or is_wanted(current)):
        if unverified:  # the tarball names this image; that it is the pinned tarball is read now
            _verify_sha256(step, tarball, identities, progress)
        return ImageOutcome("present", current.id)
    for digest in () if planned_load and tarball is not None else wanted:
        existing = engine.get(digest)
        if existing is not None and is_wanted(existing):
            if unverified:
                _verify_sha256(step, tarball, identities, progress)
            client.api.tag(existing.id, step.ref)
            return ImageOutcome("tagged", existing.id, _moved(step, current, existing.id))
    if tarball is None:
        if current is not None and step.expected_id is not None:
            raise ImageError(f"{step.ref} on this host is {current.id}, the manifest pins {step.expected_id}",
                             hint="load the pinned image (give image.tarball) or update image.id")
        how = step.obtain or "give image.tarball.source (a docker save tarball) or image.build in the manifest, or pull it from its registry (image.pull: true)"
        raise ImageError(f"image {step.ref} is not on this host, and the manifest does not pull it", hint=how)

    from envctl.images import load_tarball  # loading: only when the image is not on the engine yet

    stat = tarball.stat()
    advance = progress(f"loading {tarball.name}", stat.st_size) if progress else None
    try:
        if loader is not None:
            lines = loader(tarball, advance, identity) or []
        else:
            lines = load_tarball(client, tarball, advance, socket_path, expected_sha256=step.sha256 if unverified else None)
    except ImageError as exc:
        raise _load_failed(exc, engine, step, tarball, identity, current) from None
    if unverified:  # read whole and found to be the pinned one: the next check needs no read
        identities.record_sha256(tarball, step.sha256, stat.st_size, stat.st_mtime_ns)
    loaded = _loaded_image(engine, step, identity, lines)
    moved = _moved(step, current, loaded.id)
    if moved:
        moved += " (the old image is kept, untagged unless other tags name it)"
    return ImageOutcome("loaded", loaded.id, moved)


def read_while_loading(tarball: Path, identities: IdentityCache) -> bool:
    """Whether a tarball's identity is better read in the read that loads it than in one of its
    own before: it is compressed (its identity is in its last bytes, read by inflating it whole:
    1.5 s for a 1 GiB tar, about as long as the load's own inflating) and not remembered. The
    plan (envctl/observe.py) and the image step then read it once, when the engine has no image
    of the ref and none of the pinned ID: the load is certain whatever the tarball says, and
    what it says is checked before its tail is sent (_load_reading_identity). An unreadable
    tarball is left to the identity read's own errors."""
    try:
        return tarball.is_file() and identities.get(tarball) is None and compression_of(tarball) != "none"
    except OSError:
        return False


def _load_reading_identity(client, step: EnsureImage, tarball: Path, identities: IdentityCache, progress,
                           socket_path: str, engine: EngineImages) -> ImageOutcome:
    """Load a compressed tarball into an engine that has no image of step.ref, reading its
    identity on the way (images.load_tarball `identity_check`): the pinned sha256, the image it
    names and the pinned ID are checked as _tarball_identity checks them, before the tarball's
    tail reaches the engine; a tarball that fails them loads nothing. The identity, its sha256
    verified, is remembered as a read of its own would have."""
    from envctl.images import load_tarball

    stat = tarball.stat()
    checked: list[TarballIdentity] = []

    def check(identity: TarballIdentity) -> None:
        identities.put(tarball, identity)  # what the tarball holds, whatever the checks say
        if step.sha256 and identity.sha256 != step.sha256:  # a tarball that is not the pinned one is said so first
            raise sha256_mismatch(tarball, identity.sha256, step.sha256)
        checked.append(_checked(step, tarball, identity.image_for(step.ref, step.expected_id), engine))

    advance = progress(f"loading {tarball.name}", stat.st_size) if progress else None
    try:
        lines = load_tarball(client, tarball, advance, socket_path, identity_check=check)
    except ImageError as exc:
        raise _load_failed(exc, engine, step, tarball, checked[0] if checked else None, None) from None
    loaded = _loaded_image(engine, step, checked[0], lines)
    return ImageOutcome("loaded", loaded.id)


def _load_failed(exc: ImageError, engine: EngineImages, step: EnsureImage, tarball: Path, identity: TarballIdentity | None,
                 before: EngineImage | None) -> ImageError:
    """The error to raise for a load that failed with `exc`, once step.ref names what it named
    `before` again (the containerd store may have tagged what it could not unpack): `exc`
    itself, or for an OCI layout the classic image store cannot load (`identity`, when the
    tarball was read) `exc` with how to convert it. A Sha256Mismatch stays as it is: found in
    the read that sent it, the engine got an incomplete body."""
    _restore(engine, step.ref, before)
    if isinstance(exc, Sha256Mismatch) or identity is None or identity.docker_manifest or engine.containerd_store():
        return exc
    return ImageError(f"{exc.message}\n{tarball} is an OCI layout without manifest.json (as `skopeo copy` and "
                      "`podman save` write an oci-archive), which this engine's classic image store cannot load",
                      hint=f"write it as a docker save tarball: {_conversion(engine, identity, tarball, step.ref)} "
                           "(or use an engine with the containerd image store)")


def _conversion(engine: EngineImages, identity: TarballIdentity, tarball: Path, ref: str) -> str:
    """The skopeo command that writes an OCI layout as a `docker save` tarball. From a
    multi-platform index, skopeo copies one platform's image into a docker-archive, the host's
    unless --override-os/--override-arch/--override-variant say otherwise (skopeo(1)): the
    engine's is named, since the engine may run on another host."""
    platform = ""
    if identity.multi_platform:
        which = engine.platform()
        platform = f"--override-os {which.os} --override-arch {which.architecture} " + (
            f"--override-variant {which.variant} " if which.variant else "")
    return f"skopeo copy {platform}oci-archive:{tarball} docker-archive:OUT.tar:{ref}"


def _moved(step: EnsureImage, current: EngineImage | None, now: str) -> str | None:
    return f"{step.ref} pointed at {current.id}; now at {now}" if current is not None and current.id != now else None


def _restore(engine: EngineImages, ref: str, before: EngineImage | None) -> None:
    """After a failed load, `ref` names what it named before: the containerd store tags an image
    it then fails to unpack."""
    from docker.errors import APIError

    after = engine.get(ref)
    if after is None or (before is not None and after.id == before.id):
        return
    try:
        if before is not None:
            engine.client.api.tag(before.id, ref)
        else:
            engine.client.api.remove_image(ref)
    except APIError:
        pass  # the load's own error is the one to report


def _engine_id(engine: EngineImages, identity: TarballIdentity) -> str:
    """The ID this engine gives the tarball's image: its manifest digest on the containerd store."""
    return identity.manifest_digests[0] if engine.containerd_store() and identity.manifest_digests else identity.image_id


def _loaded_image(engine: EngineImages, step: EnsureImage, identity: TarballIdentity, lines: list[str]) -> EngineImage:
    """The image the load made, tagged `step.ref` when the tarball named none, and checked: its
    ID is one of the tarball's (config digest, manifest digests), or its config digest is the
    tarball's (read from the engine when the manifest digest could not be told beforehand)."""
    tarball = step.source
    found = engine.get(step.ref) if identity.repo_tags else None  # looked up once, used below while nothing was tagged
    # Untagged (saved by ID), or named only by org.opencontainers.image.ref.name, which Docker 28
    # (containerd store) stores as written: `envctl-review/a:1` is then not found as
    # docker.io/envctl-review/a:1, by envctl or by `docker run`. The tarball was checked to hold
    # step.ref before loading, so the image is tagged step.ref here.
    if found is None:
        from envctl.images import loaded_ids  # after a load only

        for candidate in [*loaded_ids(lines), *identity.ids]:
            image = engine.get(candidate)
            if image is not None:
                engine.client.api.tag(image.id, step.ref)
                break
        found = engine.get(step.ref)  # what the tag made (or still nothing)
    # Either way one look-up of step.ref after the load and any tag (it was asked twice: one
    # Engine API request, a round trip on an SSH host, less; issue 14).
    loaded = found
    if loaded is None:
        raise ImageError(f"after loading {tarball}, the engine has no {step.ref}",
                         hint="the tarball may be corrupt: download it again")
    if loaded.id not in identity.ids and not engine.matches(loaded, identity.image_id):
        raise ImageError(f"after loading {tarball}, {step.ref} is {loaded.id}, expected {_engine_id(engine, identity)}")
    engine.remember(loaded.id, identity.image_id)
    return loaded


def _ensure_built(client, step: EnsureImage, current, memo: Path) -> ImageOutcome:
    from docker.errors import APIError, BuildError  # docker-py's, imported with the engine's first use

    from envctl.images import context_digest  # built images only

    context = Path(step.source)
    digest = context_digest(context, memo)
    if current is not None and current.labels.get(LABEL_CONTEXT) == digest:
        return ImageOutcome("present", current.id)
    try:
        image, _ = client.images.build(path=str(context), tag=step.ref, rm=True, labels={LABEL_CONTEXT: digest})
    except BuildError as exc:
        tail = "\n".join(str(line.get("stream", "")).rstrip() for line in list(exc.build_log)[-10:] if line.get("stream"))
        raise ImageError(f"building {step.ref} from {context} failed: {exc.msg}\n{tail}") from None
    except APIError as exc:
        raise ImageError(f"building {step.ref} from {context} failed: {exc.explanation or exc}") from None
    return ImageOutcome("built", image.id)
