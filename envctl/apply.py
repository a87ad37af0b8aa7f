"""`up`: execute a Plan on a host, step by step, as the plan says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from envctl.artifacts.cache import Cache
from envctl.artifacts.download import Downloader, RemoteFile
from envctl.artifacts.fetch import fetch_all, with_credentials, workspace_copy
from envctl.artifacts.sources import Source
from envctl.engine import local_socket
from envctl.errors import FetchError, HostNotReady
from envctl.image_step import ImageOutcome, Progress, ensure_image
from envctl.images import IdentityCache
from envctl.lifecycle import ContainerOutcome, ensure
from envctl.manifest.loader import Loaded
from envctl.paths import cache_dir
from envctl.plan import Plan
from envctl.setup_steps import StepOutcome, run_setup


@dataclass(frozen=True)
class Report:
    plan: Plan
    image: ImageOutcome
    container: ContainerOutcome
    setup: tuple[StepOutcome, ...]


def check_ready(plan: Plan) -> None:
    """Refuse to start when the plan says the host is not ready or an artifact has no source."""
    problems = list(plan.blockers)
    for artifact in plan.artifacts:
        if artifact.source is None:
            problems.append(f"artifact {artifact.name} has no source: {artifact.obtain}")
    if problems:
        raise HostNotReady(
            f"{plan.manifest} cannot start on {plan.host}:\n" + "\n".join(f"- {p}" for p in problems),
            hint=f"`envctl plan {plan.manifest}` shows the whole plan",
        )


def place_artifacts(loaded: Loaded, plan: Plan, echo, progress, offline: bool, environ=None) -> None:
    """Fetch every artifact into the cache, then make the writable copies `mode: rw` asks for."""
    cache = Cache(cache_dir(environ))
    fetched = {f.name: f for f in fetch_all(loaded, cache, offline, progress, echo)}
    for artifact in plan.artifacts:
        if artifact.mode == "rw" and artifact.host_path:
            key = Path(artifact.cache_path).relative_to(cache.root / "artifacts")
            placed = fetched[artifact.name].path
            if artifact.subpath:
                placed = placed / artifact.subpath.strip("/")
            action = workspace_copy(placed, cache.placed_record(str(key)), Path(artifact.host_path))
            if action == "copied":
                echo(f"artifact   {artifact.name}: writable copy at {artifact.host_path}")


def local_tarball(client, loaded: Loaded, plan: Plan, cache: Cache, progress, offline: bool):
    """The image tarball as a local file. One behind http(s)/ftp is downloaded into the cache
    (resumable, verified) only when it is needed: not when the image is already on the engine
    and nothing pins another ID."""
    source = loaded.image_source
    if source is None or source.kind == "file":
        return source
    expected = plan.image.sha256
    if expected and cache.has_blob(expected):
        return Source("file", str(cache.blob(expected)))
    if plan.image.expected_id is None:
        from docker.errors import ImageNotFound

        try:
            client.images.get(plan.image.ref)
            return None  # present, and nothing to compare it with short of downloading GBs
        except ImageNotFound:
            pass
    if offline:
        raise FetchError(f"image tarball {source.display} is not in the cache and --offline was given")
    # One download of a tarball at a time, as for artifacts: two `up`s (or two hosts of one
    # `up --hosts`) would otherwise append to the same partial file.
    with cache.locked(f"image-tarball:{source.display}"):
        if expected and cache.has_blob(expected):  # the other one finished it meanwhile
            return Source("file", str(cache.blob(expected)))
        if source.kind == "ftp":
            from envctl.artifacts.ftp import fetch_ftp

            sha, _ = fetch_ftp(source, expected, cache)
        else:
            url, auth = with_credentials(source)
            sha, _ = Downloader(cache, progress=progress).fetch(RemoteFile("", url, source.display, None, expected, auth=auth))
        cache.remember_source(source.identity(), sha)  # so that `cache gc` keeps it for this manifest
    return Source("file", str(cache.blob(sha)))


def prepare(client, loaded: Loaded, plan: Plan, echo: Callable[[str], None], progress: Progress | None = None, environ=None,
            offline: bool = False) -> ImageOutcome:
    """Everything before the container: readiness, artifacts, the image."""
    check_ready(plan)
    place_artifacts(loaded, plan, echo, progress, offline, environ)
    Path(plan.workspace).mkdir(parents=True, exist_ok=True)
    cache = cache_dir(environ)
    if plan.baked:
        image = client.images.get(plan.baked)
        echo(f"image      {plan.baked}: baked (setup inside)")
        return ImageOutcome("baked", image.id)
    tarball = local_tarball(client, loaded, plan, Cache(cache), progress, offline)
    image = ensure_image(client, plan.image, tarball, IdentityCache(cache / "state" / "tarballs.json"), progress,
                         local_socket(environ))
    echo(f"image      {plan.image.ref}: {image.action}" + (f" ({image.note})" if image.note else ""))
    return image


def up(client, loaded: Loaded, plan: Plan, echo: Callable[[str], None], progress: Progress | None = None, environ=None,
       offline: bool = False) -> Report:
    image = prepare(client, loaded, plan, echo, progress, environ, offline)
    return start(client, loaded, plan, image, cache_dir(environ) / "locks", echo)


def start(client, loaded: Loaded, plan: Plan, image: ImageOutcome, lock_dir: Path, echo: Callable[[str], None]) -> Report:
    """The container (created, started or kept) and its setup steps, once the image is there."""
    container = ensure(client, plan.container, image.image_id, str(loaded.file), lock_dir)
    detail = f": {', '.join(container.changes)} changed" if container.changes else ""
    echo(f"container  {plan.container.name}: {container.action}{detail}")
    steps = run_setup(client, container.container_id, plan.setup, echo)
    ran = sum(1 for s in steps if s.action == "ran")
    if steps:
        echo(f"setup      {ran} step(s) ran, {len(steps) - ran} unchanged")
    return Report(plan, image, container, tuple(steps))
