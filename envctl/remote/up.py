"""`up` on a remote host: the same steps as on this machine, through the Host seam.

Probes read the remote (SSHHost); the plan is computed with the remote's paths; artifacts are
fetched into the local cache and pushed (`fetch: push`: only what the remote lacks, resumable,
verified there); an image tarball is pushed into the remote cache and loaded by the remote's
engine, unless that engine already has the image (by ID); container and setup go through the
remote engine's forwarded socket with the same code as locally.
"""

from __future__ import annotations

from typing import Callable

from envctl.apply import Report, check_ready, local_tarball, start
from envctl.artifacts.cache import Cache
from envctl.artifacts.fetch import fetch_all
from envctl.errors import FetchError
from envctl.image_identity import RECORDS, EngineImages
from envctl.image_step import ImageOutcome, ensure_image
from envctl.images import IdentityCache, loaded_ids
from envctl.manifest.loader import Loaded
from envctl.observe import observe
from envctl.paths import cache_dir
from envctl.plan import Options, Plan, build_plan
from envctl.remote.place import docker_load, load_image_remotely, push_artifacts
from envctl.remote.remote_fetch import fetch_on_remote
from envctl.remote.target import RemoteTarget
from envctl.remote.transfer import download_remotely


def place_artifacts(target: RemoteTarget, loaded: Loaded, plan: Plan, local: Cache, echo, progress, offline: bool) -> None:
    """`fetch: remote`: the host downloads what it can itself; the rest (and everything with
    `fetch: push`) is fetched here and pushed."""
    done = fetch_on_remote(target, loaded, plan.artifacts, local, echo, progress, offline) if target.fetch == "remote" else set()
    rest = [a.name for a in plan.artifacts if a.name not in done and a.cache_path]
    if rest:
        fetched = fetch_all(loaded, local, offline, progress, echo, names=rest)
        push_artifacts(target.connection, plan.artifacts, fetched, local, target.cache, echo, progress)


def _remote_downloads_image(target: RemoteTarget, loaded: Loaded, plan: Plan) -> bool:
    source = loaded.image_source
    return (target.fetch == "remote" and source is not None and source.kind == "http" and plan.image.origin == "tarball"
            and not plan.image.present)


def load_from_remote_download(target: RemoteTarget, client, loaded: Loaded, plan: Plan, offline: bool) -> ImageOutcome:
    """The host downloads the image tarball from its own mirror and loads it; without a pinned
    sha256 or image ID nothing could be checked, so one of them is required."""
    from envctl.artifacts.fetch import with_credentials
    from envctl.images import ImageError

    step = plan.image
    if step.sha256 is None and step.expected_id is None:
        raise ImageError(f"image {step.ref}: {target.name} downloads it itself (fetch: remote), which needs "
                         "image.tarball.sha256 or image.id to check it against",
                         hint="run `envctl lock` to record the tarball's digest, or set fetch: push for this host")
    if offline:
        raise FetchError(f"image tarball {loaded.image_source.display} is not on {target.name} and --offline was given")
    url, auth = with_credentials(loaded.image_source)
    blobs = f"{target.cache}/blobs/sha256"
    sha = download_remotely(target.connection, url, loaded.image_source.display, blobs, step.sha256, auth=auth)
    lines = docker_load(target.connection, f"{blobs}/{sha}")
    engine = EngineImages(client, cache_dir() / "state" / RECORDS)
    image = engine.get(step.ref)
    if image is None and step.expected_id:  # saved by image ID: it names no image; the pin tells which it is
        for candidate in [*loaded_ids(lines), step.expected_id]:
            found = engine.get(candidate)
            if found is not None and engine.matches(found, step.expected_id):
                client.api.tag(found.id, step.ref)
                image = found
                break
    if image is None:
        raise ImageError(f"{target.name}: after loading {loaded.image_source.display}, the engine has no {step.ref}",
                         hint="check that image.ref names the image the tarball holds")
    if step.expected_id and not engine.matches(image, step.expected_id):
        raise ImageError(f"{target.name}: after loading, {step.ref} is {image.id}, the manifest pins {step.expected_id}")
    return ImageOutcome("loaded", image.id)


def plan_remote(target: RemoteTarget, loaded: Loaded, options: Options, with_engine: bool = True) -> Plan:
    """The plan on a remote host: its probes, its engine, its cache (each artifact's record
    there), and this machine's cache for what would be pushed."""
    from envctl.artifacts.sources import artifact_key
    from envctl.remote.place import remote_record

    def records(name: str):
        artifact, source = loaded.manifest.artifacts[name], loaded.sources[name]
        key = artifact_key(source, artifact.subpath, artifact.include)
        return remote_record(target.connection, f"{target.cache}/artifacts/{key}")

    client = target.docker() if with_engine else None
    observed = observe(target.host, loaded, client, remote_records=records, fetch_mode=target.fetch)
    return build_plan(loaded, observed, options, target.environ())


def up_remote(target: RemoteTarget, loaded: Loaded, plan: Plan, echo: Callable[[str], None], progress=None,
              offline: bool = False) -> Report:
    client = target.docker()
    check_ready(plan)
    local = Cache(cache_dir())
    place_artifacts(target, loaded, plan, local, echo, progress, offline)
    target.connection.check(["mkdir", "-p", plan.workspace], "creating the workspace")
    if plan.baked:
        image = ImageOutcome("baked", client.images.get(plan.baked).id)
        echo(f"image      {plan.baked}: baked (setup inside)")
    elif _remote_downloads_image(target, loaded, plan):
        image = load_from_remote_download(target, client, loaded, plan, offline)
        echo(f"image      {plan.image.ref}: {image.action}")
    else:
        tarball = local_tarball(client, loaded, plan, local, progress, offline)
        image = ensure_image(client, plan.image, tarball, IdentityCache(local.root / "state" / "tarballs.json"), progress,
                             loader=load_image_remotely(target.connection, target.cache, client))
        echo(f"image      {plan.image.ref}: {image.action}" + (f" ({image.note})" if image.note else ""))
    return start(client, loaded, plan, image, local.root / "locks" / target.name, echo)
