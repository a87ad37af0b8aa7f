"""`envctl build` and `envctl save`: the image with the setup steps already inside.

A bake runs the setup steps in a throwaway container of the manifest's image, with the
artifacts mounted as `up` mounts them, and commits it as `envctl-baked/<name>:<key>`, where the
key hashes the base image ID and every setup step (which covers the artifacts they use): two
labs baking the same inputs get the same tag. The setup markers are committed too, so `up` from
a baked image runs no step. What setup writes into `mode: rw` artifacts lives in the workspace,
not in the image, and is redone by nobody: bake manifests whose setup writes into the image.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from pathlib import Path
from typing import Callable

from envctl.containers import LABEL_BAKE_KEY, LABEL_BAKED_FOR
from envctl.lifecycle import ContainerError, ContainerRefused
from envctl.manifest.model import variant_slug
from envctl.plan import Plan, bake_key
from envctl.setup_steps import run_setup


def baked_ref(plan: Plan, base_config_digest: str) -> tuple[str, str]:
    key = bake_key(base_config_digest, plan.setup)
    suffix = f"-{variant_slug(plan.variant)}" if plan.variant else ""  # a combination's '+' is no name's
    return f"envctl-baked/{plan.manifest}{suffix}:{key}", key


def bake(client, plan: Plan, base_image_id: str, echo: Callable[[str], None], runtime=None) -> tuple[str, str]:
    """Returns (ref, "present" | "baked"). `base_image_id`: the engine's ID of the base image; the
    key is made from its config digest, so both image stores give the same tag. `runtime`: the
    run-time-only variables for the steps (envctl/runtime_env.py RuntimeEnv): they reach the
    steps' processes only, so the committed image's configuration never holds them."""
    from docker.errors import APIError, ImageNotFound

    from envctl.image_identity import RECORDS, EngineImages
    from envctl.paths import cache_dir

    images = EngineImages(client, cache_dir() / "state" / RECORDS)
    base = images.get(base_image_id)
    ref, key = baked_ref(plan, (images.config_digest(base) if base is not None else None) or base_image_id)
    try:
        client.images.get(ref)
        return ref, "present"
    except ImageNotFound:
        pass
    spec = dataclasses.replace(plan.container, name=f"{plan.container.name}-bake-{os.getpid()}", image=base_image_id)
    kwargs = spec.api_kwargs()
    kwargs["labels"] = {}  # a throwaway container: never listed as an environment
    try:
        container = client.containers.create(**kwargs)
        container.start()
    except APIError as exc:
        raise ContainerRefused(f"could not start a container to bake {ref}: {exc.explanation or exc}") from None
    try:
        run_setup(client, container.id, plan.setup, echo, runtime.values if runtime else None,
                  runtime.secrets if runtime else None)
        repository, tag = ref.rsplit(":", 1)
        container.commit(repository=repository, tag=tag, conf={"Labels": {LABEL_BAKED_FOR: plan.manifest, LABEL_BAKE_KEY: key}})
    finally:
        container.remove(force=True)
    return ref, "baked"


def save(client, ref: str, output: Path, echo: Callable[[str], None]) -> int:
    """Write the image as a `docker save` tarball (gzipped when the name ends in .gz), atomically."""
    from docker.errors import ImageNotFound

    try:
        image = client.images.get(ref)
    except ImageNotFound:
        raise ContainerError(f"{ref} is not on this host: run `envctl build` first") from None
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    opener = gzip.open if output.name.endswith(".gz") else open
    written = 0
    with opener(temporary, "wb") as handle:
        for chunk in image.save(named=True):
            handle.write(chunk)
            written += len(chunk)
    os.replace(temporary, output)
    echo(f"saved {ref} ({written / (1 << 20):.0f} MiB of image data) to {output}")
    return written


def load(client, tarball: Path, echo: Callable[[str], None], progress: Callable[[int], None] | None = None,
         socket_path: str | None = None) -> list[tuple[tuple[str, ...], str, str]]:
    """`envctl load`: load a tarball and say, for every image in it, its tags and the image ID
    as this engine names it (the config digest on the classic store, the manifest or index
    digest on the containerd store), with the config digest beside it when they differ, so
    that either can be pinned. Returns [(tags, engine ID, config digest)] in the tarball's
    order. Raises ImageError when the tarball cannot be read or loaded."""
    from envctl.image_identity import RECORDS, EngineImages
    from envctl.images import load_tarball, loaded_ids, read_identity
    from envctl.paths import cache_dir

    identity = read_identity(tarball)
    lines = load_tarball(client, tarball, progress, socket_path)
    engine = EngineImages(client, cache_dir() / "state" / RECORDS)
    if identity.multi_platform and engine.containerd_store():
        identity = identity.for_platform(engine.platform())
    reported = []
    for saved in identity.images:
        image = next((found for found in (engine.get(name) for name in
                                          [*saved.repo_tags, *saved.manifest_digests, saved.image_id, *loaded_ids(lines)])
                      if found is not None and (found.id in (saved.image_id, *saved.manifest_digests) or not saved.manifest_digests)),
                     None)
        engine_id = image.id if image is not None else saved.image_id
        engine.remember(engine_id, saved.image_id)
        also = f", config digest {saved.image_id}" if engine_id != saved.image_id else ""
        echo(f"loaded     {', '.join(saved.repo_tags) or 'an untagged image'} ({engine_id}{also})")
        reported.append((saved.repo_tags, engine_id, saved.image_id))
    return reported
