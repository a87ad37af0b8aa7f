"""The stand-in vendor images (tests/images/standin-*), built locally FROM the debootstrap base and
written out as `docker save` tarballs carrying the manifests' own image refs, so that `envctl up`
takes its real tarball path (identify, load or tag) for them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest

from support import REPO

IMAGES = REPO / "images"  # the debootstrap base script
STANDINS = REPO / "tests" / "images"  # test-only: not shipped in the wheel with images/
BASE = "envctl/debian-bookworm-python:local"
COMMON = "envctl-standin/common:local"
LABEL = "io.envctl.standin"


def ensure_base() -> None:
    done = subprocess.run(["bash", str(IMAGES / "debian-python-base.sh")], check=False, capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        pytest.fail(f"the debootstrap base image could not be made:\n{done.stderr[-2000:]}", pytrace=False)


def build(engine, family: str) -> str:
    """Build tests/images/standin-<family> (after the common layer) and return its tag."""
    tag = f"envctl-standin/{family}:local"
    for directory, name, base in (("standin-common", COMMON, BASE), (f"standin-{family}", tag, COMMON)):
        try:
            engine.images.build(path=str(STANDINS / directory), tag=name, buildargs={"BASE": base}, rm=True, forcerm=True)
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            log = "".join(str(line.get("stream", "")) for line in getattr(exc, "build_log", []))
            pytest.fail(f"building {directory} failed: {exc}\n{log[-2000:]}", pytrace=False)
    return tag


def _refuse_foreign(engine, ref: str) -> None:
    # Never re-point a tag at a stand-in on a machine that holds the real vendor image.
    try:
        image = engine.images.get(ref)
    except docker.errors.ImageNotFound:
        return
    if LABEL not in (image.labels or {}):
        pytest.fail(f"{ref} on this engine is not a stand-in; refusing to replace it", pytrace=False)


def save_as(engine, tag: str, refs: list[str], path: Path) -> str:
    """`docker save` the image `tag` under every ref in `refs` to `path`; afterwards none of the
    refs and not `tag` itself is left on the engine, so the first `up` really loads the tarball.
    Returns the image ID."""
    for ref in refs:
        _refuse_foreign(engine, ref)
    image = engine.images.get(tag)
    for ref in refs:
        image.tag(ref)
    subprocess.run(["docker", "save", "-o", str(path), *refs], check=True, timeout=600)
    remove(engine, [*refs, tag])
    return image.id


def remove(engine, refs: list[str]) -> None:
    for ref in refs:
        try:
            if LABEL in (engine.images.get(ref).labels or {}):
                engine.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass
