"""The image step of `up`, on any host: the plan's image action executed through the Host.

- present: nothing moves (a baked image, or the image already on the engine by ID).
- tag: the pinned image is on the engine under another name; it is tagged image.ref.
- load: the tarball on this machine goes to the engine (an SSH host gets it into its cache
  first, resumable and verified there: Host.image_loader).
- download+load: the tarball is downloaded into this machine's cache first; an SSH host with
  `fetch: remote` downloads it itself (Host.download), checked against the pinned sha256.
- build: `docker build` on the host's engine.
- pull: the host's engine pulls (through its mirror); pull+push: this machine's engine pulls,
  and the image goes to an air-gapped host (`fetch: push`) as a tarball (envctl/registry_step.py).

Before acting, the image ref must still name what it named when the plan was made.
"""

from __future__ import annotations

from typing import Callable

from envctl.artifacts.cache import Cache
from envctl.artifacts.sources import Source
from envctl.errors import FetchError, WorldChanged
from envctl.hosts.base import WritableHost
from envctl.image_step import UNASKED, ImageOutcome, ensure_image
from envctl.images import IdentityCache, ImageError
from envctl.manifest.loader import Loaded
from envctl.plan import Plan


def ensure(host: WritableHost, loaded: Loaded, plan: Plan, local: Cache, echo: Callable[[str], None], progress=None,
           offline: bool = False, looked_up=None) -> tuple[ImageOutcome, str]:
    """Execute the image action; returns the outcome and what was executed, in the plan's
    words. `local`: this machine's cache (tarballs, identity records). `looked_up`: as for
    check_unchanged. Raises WorldChanged, ImageError, FetchError."""
    from envctl.apply import local_tarball

    client = host.engine()
    current = check_unchanged(client, plan, looked_up)
    if plan.baked:
        outcome = ImageOutcome("baked", client.images.get(plan.baked).id)
        echo(f"image      {plan.baked}: baked (setup inside)")
        return outcome, "present"
    if plan.image.origin == "pull":
        from envctl.registry_step import ensure_pulled

        return ensure_pulled(host, client, loaded, plan, local, echo, progress, offline)
    if host_downloads(host, loaded, plan):
        outcome = load_host_download(host, client, loaded, plan, local, offline)
        echo(f"image      {plan.image.ref}: {outcome.action}")
        return outcome, "download+load"
    source = loaded.image_source
    downloaded = (plan.image.action == "download+load" and source is not None and source.kind != "file"
                  and not (plan.image.sha256 and local.has_blob(plan.image.sha256)))
    if plan.image.action in ("load", "download+load"):
        tarball = local_tarball(client, loaded, plan, local, progress, offline)
    else:  # present or tag: the tarball, when it is here, names the wanted image; nothing is downloaded
        from envctl.observe_cache import tarball_here

        here = tarball_here(loaded, local)
        tarball = Source("file", str(here)) if here is not None else None
    # The check's look-up is the image step's, one request (an SSH round trip) less, when only
    # reads of this machine came in between; a download's minutes leave room for another `up`
    # to load the image meanwhile, so the step then looks again.
    try:
        outcome = ensure_image(client, plan.image, tarball, IdentityCache(local.root / "state" / "tarballs.json"),
                               progress, host.engine_socket(), loader=host.image_loader(),
                               current=UNASKED if downloaded else current)
    except ImageError as failed:
        # Another `up` loaded the image meanwhile: the containerd image store refuses the second
        # of two loads of one image at once ("AlreadyExists: image ... already exists"). The
        # world changed since the plan, which is what to say, not a corrupt tarball.
        try:
            check_unchanged(client, plan)
        except WorldChanged as changed:
            raise changed from failed
        raise
    echo(f"image      {plan.image.ref}: {outcome.action}" + (f" ({outcome.note})" if outcome.note else ""))
    if outcome.action == "loaded":
        return outcome, "download+load" if downloaded else "load"
    return outcome, {"tagged": "tag", "built": "build"}.get(outcome.action, outcome.action)


def check_unchanged(client, plan: Plan, looked_up=None):
    """The image ref names what it named when the plan was made. Returns what it names now
    (EngineImages.get: an EngineImage, or None), or image_step.UNASKED when the plan did not
    read the engine (nothing to compare). `looked_up()`: that look-up, asked earlier while
    nothing acted (envctl/apply_reads.py); it raises what the look-up raised. Raises WorldChanged."""
    from envctl.image_identity import EngineImages

    if not plan.world.engine:
        return UNASKED
    now = looked_up() if looked_up is not None else EngineImages(client, None).get(plan.image.ref)
    now_id = now.id if now is not None else None
    if now_id != plan.world.image_id:
        raise WorldChanged(f"image {plan.image.ref} changed since the plan was made: it was "
                           f"{plan.world.image_id or 'absent'}, it is {now_id or 'absent'}",
                           hint="run `envctl plan` again to see what up would do now")
    return now


def host_downloads(host: WritableHost, loaded: Loaded, plan: Plan) -> bool:
    """The plan has the host download the tarball itself (`fetch: remote`, from an http(s) mirror)."""
    source = loaded.image_source
    return (host.fetch_mode == "remote" and plan.image.action == "download+load" and source is not None
            and source.kind == "http" and plan.image.origin == "tarball")


def load_host_download(host: WritableHost, client, loaded: Loaded, plan: Plan, local: Cache, offline: bool) -> ImageOutcome:
    """The host downloads the image tarball from its own mirror and loads it; without a pinned
    sha256 or image ID nothing could be checked, so one of them is required."""
    from envctl.artifacts.fetch import with_credentials
    from envctl.image_identity import RECORDS, EngineImages
    from envctl.images import ImageError, loaded_ids
    from envctl.remote.place import docker_load

    step = plan.image
    if step.sha256 is None and step.expected_id is None:
        raise ImageError(f"image {step.ref}: {host.name} downloads it itself (fetch: remote), which needs "
                         "image.tarball.sha256 or image.id to check it against",
                         hint="run `envctl lock` to record the tarball's digest, or set fetch: push for this host")
    if offline:
        raise FetchError(f"image tarball {loaded.image_source.display} is not on {host.name} and --offline was given")
    url, auth = with_credentials(loaded.image_source)
    sha = host.download(url, loaded.image_source.display, step.sha256, auth=auth)
    lines = docker_load(host.connection, f"{host.cache_root}/blobs/sha256/{sha}")
    engine = EngineImages(client, local.root / "state" / RECORDS)
    image = engine.get(step.ref)
    if image is None and step.expected_id:  # saved by image ID: it names no image; the pin tells which it is
        for candidate in [*loaded_ids(lines), step.expected_id]:
            found = engine.get(candidate)
            if found is not None and engine.matches(found, step.expected_id):
                client.api.tag(found.id, step.ref)
                image = found
                break
    if image is None:
        raise ImageError(f"{host.name}: after loading {loaded.image_source.display}, the engine has no {step.ref}",
                         hint="check that image.ref names the image the tarball holds")
    if step.expected_id and not engine.matches(image, step.expected_id):
        raise ImageError(f"{host.name}: after loading, {step.ref} is {image.id}, the manifest pins {step.expected_id}")
    return ImageOutcome("loaded", image.id)
