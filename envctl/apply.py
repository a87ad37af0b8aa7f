"""`up`: execute a Plan on a host, step by step, as the plan says."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from envctl.engine import local_socket
from envctl.errors import HostNotReady
from envctl.image_step import ImageOutcome, Progress, ensure_image
from envctl.images import IdentityCache
from envctl.lifecycle import ContainerOutcome, ensure
from envctl.manifest.loader import Loaded
from envctl.paths import cache_dir
from envctl.plan import WORKSPACE_TARGET, Plan
from envctl.setup_steps import StepOutcome, run_setup


@dataclass(frozen=True)
class Report:
    plan: Plan
    image: ImageOutcome
    container: ContainerOutcome
    setup: tuple[StepOutcome, ...]


def check_ready(plan: Plan) -> None:
    """Refuse to start when the plan says the host is not ready or an artifact is missing."""
    problems = list(plan.blockers)
    for artifact in plan.artifacts:
        if artifact.source is None:
            problems.append(f"artifact {artifact.name} has no source: {artifact.obtain}")
        elif artifact.host_path and not os.path.exists(artifact.host_path):
            problems.append(f"artifact {artifact.name} ({artifact.source}) is not in the cache at {artifact.host_path}")
    if problems:
        raise HostNotReady(
            f"{plan.manifest} cannot start on {plan.host}:\n" + "\n".join(f"- {p}" for p in problems),
            hint=f"`envctl plan {plan.manifest}` shows the whole plan",
        )


def up(client, loaded: Loaded, plan: Plan, echo: Callable[[str], None], progress: Progress | None = None, environ=None) -> Report:
    check_ready(plan)
    cache = cache_dir(environ)
    image = ensure_image(client, plan.image, loaded.image_source, IdentityCache(cache / "state" / "tarballs.json"), progress,
                         local_socket(environ))
    echo(f"image      {plan.image.ref}: {image.action}" + (f" ({image.note})" if image.note else ""))
    workspace = next(m.source for m in plan.container.mounts if m.target == WORKSPACE_TARGET)
    Path(workspace).mkdir(parents=True, exist_ok=True)
    container = ensure(client, plan.container, image.image_id, str(loaded.file), cache / "locks")
    detail = f": {', '.join(container.changes)} changed" if container.changes else ""
    echo(f"container  {plan.container.name}: {container.action}{detail}")
    steps = run_setup(client, container.container_id, plan.setup, echo)
    ran = sum(1 for s in steps if s.action == "ran")
    if steps:
        echo(f"setup      {ran} step(s) ran, {len(steps) - ran} unchanged")
    return Report(plan, image, container, tuple(steps))
