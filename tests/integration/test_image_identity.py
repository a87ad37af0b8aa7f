"""One image identity on both of Docker's image stores (envctl/image_identity.py).

The classic store calls an image by its config digest, the containerd store by its manifest
digest and finds images by nothing else (moby daemon/containerd resolveImage). These tests pin
config digests of images whose manifest digest envctl cannot compute (a committed image: its
manifest was written by the engine), so the containerd engine's answer must come from the
image itself; and bake the same inputs on both engines, which must give the same tag."""

from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from pathlib import Path

import docker
import pytest

from engines import CLASSIC, CONTAINERD, connect
from testimages import _rootfs_tar

REF = "envctl-it/identity:1"


def _remove(client, ref: str) -> None:
    try:
        client.images.remove(ref, force=True)
    except docker.errors.ImageNotFound:
        pass


def _config_digest_of_export(client, ref: str, tmp_path: Path) -> str:
    """The config digest as `docker save` writes it (manifest.json's Config), independent of envctl."""
    path = tmp_path / f"export-{uuid.uuid4().hex[:6]}.tar"
    with open(path, "wb") as handle:
        for chunk in client.images.get(ref).save(named=True):
            handle.write(chunk)
    with tarfile.open(path) as archive:
        config = json.load(archive.extractfile("manifest.json"))[0]["Config"]
        return "sha256:" + hashlib.sha256(archive.extractfile(config).read()).hexdigest()


@pytest.fixture
def committed(engine, tmp_path):
    """An image made by the engine itself (`docker commit`), under REF: (engine ID, config digest)."""
    engine.api.import_image_from_data(_rootfs_tar({"etc/identity": uuid.uuid4().bytes}), repository="envctl-it/identity",
                                      tag="base")
    container = engine.containers.create("envctl-it/identity:base", ["true"], labels={"io.envctl.test": "identity"})
    try:
        container.commit(repository="envctl-it/identity", tag="1", conf={"Labels": {"made": "by commit"}})
    finally:
        container.remove(force=True)
    yield engine.api.inspect_image(REF)["Id"], _config_digest_of_export(engine, REF, tmp_path)
    _remove(engine, REF)
    _remove(engine, "envctl-it/identity:base")


MANIFEST = """\
device: {{kind: cpu}}
image: {{ref: {ref}, id: "{pin}"}}
entrypoints:
  hello:
    run: "true"
"""


@pytest.mark.both_engines
def test_a_pinned_config_digest_is_told_by_the_image_itself(make_env, engine_under_test, committed):
    engine_id, config_digest = committed
    assert (engine_id == config_digest) == (engine_under_test.store == "classic")  # what the test is about
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=REF, pin=config_digest))
    plan = env.run("up", "--dry-run", str(env.manifest))
    assert "→ present: " in plan.stdout, plan.stdout + plan.stderr
    done = env.run("image", str(env.manifest))
    assert done.returncode == 0 and f"image      {REF}: present" in done.stderr, done.stderr
    assert done.stdout.strip() == engine_id
    if engine_under_test.store == "containerd":  # remembered: a manifest digest names one config forever
        records = json.loads((env.base / "cache" / "state" / "image-configs.json").read_text())
        assert records[engine_id] == config_digest


@pytest.mark.both_engines
def test_a_pin_of_the_engine_id_is_accepted_too_and_another_image_is_refused(make_env, engine_under_test, committed):
    engine_id, config_digest = committed
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=REF, pin=engine_id))
    done = env.run("image", str(env.manifest))
    assert done.returncode == 0 and f"image      {REF}: present" in done.stderr, done.stderr
    other = "sha256:" + "cd" * 32
    env.write(MANIFEST.format(ref=REF, pin=other))
    refused = env.run("image", str(env.manifest))
    assert refused.returncode == 5
    assert f"{REF} on this host is {engine_id}, the manifest pins {other}" in refused.stderr


BAKE = """\
device: {{kind: cpu}}
image: {{ref: envctl-it/identity-bake:1, tarball: {{source: {tarball}}}}}
setup:
  - name: mark
    run: echo baked > /etc/baked
entrypoints:
  ok:
    run: cat /etc/baked
"""


def test_the_same_inputs_bake_the_same_tag_on_both_stores(make_env, tmp_path):
    classic, current = connect(CLASSIC).client, connect(CONTAINERD).client
    classic.api.import_image_from_data(_rootfs_tar({"etc/bake": uuid.uuid4().bytes}), repository="envctl-it/identity-bake",
                                       tag="1")
    tarball = tmp_path / "bake.tar"
    with open(tarball, "wb") as handle:
        for chunk in classic.images.get("envctl-it/identity-bake:1").save(named=True):
            handle.write(chunk)
    env = make_env("cpu")
    env.write(BAKE.format(tarball=tarball))
    refs = {}
    try:
        for kind, client in ((CLASSIC, classic), (CONTAINERD, current)):
            _remove(client, "envctl-it/identity-bake:1")
            built = env.run("build", str(env.manifest), env=env.environ(DOCKER_HOST=kind.docker_host))
            assert built.returncode == 0, built.stderr
            refs[kind.store] = built.stdout.strip()
            up = env.run("up", str(env.manifest), env=env.environ(DOCKER_HOST=kind.docker_host))
            assert up.returncode == 0 and f"image      {refs[kind.store]}: baked (setup inside)" in up.stderr, up.stderr
            assert env.run("down", env.container, env=env.environ(DOCKER_HOST=kind.docker_host)).returncode == 0
        assert refs["classic"] == refs["containerd"]
        assert current.api.inspect_image(refs["containerd"])["Id"] != classic.api.inspect_image(refs["classic"])["Id"]
    finally:
        for client in (classic, current):
            for ref in {*refs.values(), "envctl-it/identity-bake:1"}:
                _remove(client, ref)
