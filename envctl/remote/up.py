"""`up` on a remote host: the same steps as on this machine, through the Host seam.

Probes read the remote (SSHHost); the plan is computed with the remote's paths; artifacts are
fetched into the local cache and pushed (`fetch: push`: only what the remote lacks, resumable,
verified there); an image tarball is pushed into the remote cache and loaded by the remote's
engine, unless that engine already has the image (by ID); container and setup go through the
remote engine's forwarded socket with the same code as locally.
"""

from __future__ import annotations

from typing import Callable

from envctl.apply import Report, check_ready, local_tarball
from envctl.artifacts.cache import Cache
from envctl.artifacts.fetch import fetch_all
from envctl.image_step import ImageOutcome, ensure_image
from envctl.images import IdentityCache
from envctl.lifecycle import ensure
from envctl.manifest.loader import Loaded
from envctl.observe import observe
from envctl.paths import cache_dir
from envctl.plan import Options, Plan, build_plan
from envctl.remote.place import load_image_remotely, push_artifacts
from envctl.remote.target import RemoteTarget
from envctl.setup_steps import run_setup


def plan_remote(target: RemoteTarget, loaded: Loaded, options: Options, with_engine: bool = True) -> Plan:
    client = target.docker() if with_engine else None
    return build_plan(loaded, observe(target.host, loaded, client), options, target.environ())


def up_remote(target: RemoteTarget, loaded: Loaded, plan: Plan, echo: Callable[[str], None], progress=None,
              offline: bool = False) -> Report:
    client = target.docker()
    check_ready(plan)
    local = Cache(cache_dir())
    fetched = fetch_all(loaded, local, offline, progress, echo)
    push_artifacts(target.connection, plan.artifacts, fetched, local, target.cache, echo, progress)
    target.connection.check(["mkdir", "-p", plan.workspace], "creating the workspace")
    if plan.baked:
        image = ImageOutcome("baked", client.images.get(plan.baked).id)
        echo(f"image      {plan.baked}: baked (setup inside)")
    else:
        tarball = local_tarball(client, loaded, plan, local, progress, offline)
        image = ensure_image(client, plan.image, tarball, IdentityCache(local.root / "state" / "tarballs.json"), progress,
                             loader=load_image_remotely(target.connection, target.cache))
        echo(f"image      {plan.image.ref}: {image.action}" + (f" ({image.note})" if image.note else ""))
    container = ensure(client, plan.container, image.image_id, str(loaded.file), local.root / "locks" / target.name)
    detail = f": {', '.join(container.changes)} changed" if container.changes else ""
    echo(f"container  {plan.container.name}: {container.action}{detail}")
    steps = run_setup(client, container.container_id, plan.setup, echo)
    ran = sum(1 for s in steps if s.action == "ran")
    if steps:
        echo(f"setup      {ran} step(s) ran, {len(steps) - ran} unchanged")
    return Report(plan, image, container, tuple(steps))
