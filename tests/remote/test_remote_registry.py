"""A pulled image (`image.pull`) for an air-gapped lab host (`fetch: push`, the inventory's
default): it reaches no registry, so this machine's engine pulls the image from a real registry
on loopback (Debian's docker-registry, tests/servers/registry.py), and it goes to the host as a
`docker save` tarball through the tarball push path, is loaded there, and runs. A second `up`
finds it there by the config digest recorded for the pinned manifest digest (`docker save`
keeps no RepoDigests) and moves nothing."""

from __future__ import annotations

import uuid

import docker
import pytest

from servers.registry import Registry, push_busybox

BODY = """\
device: {{kind: cpu}}
image:
  ref: {ref}
  pull: true
entrypoints:
  hello:
    run: cat /etc/airgap
"""


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    client = docker.from_env()
    with Registry(tmp_path_factory.mktemp("registry")) as registry:
        repository = f"envctl-it/airgap-{uuid.uuid4().hex[:6]}"
        digest = push_busybox(client, registry, repository, "1", {"etc/airgap": b"pulled, then pushed\n"})
        yield registry, f"{registry.host}/{repository}", digest
        for name in (f"{registry.host}/{repository}:1", f"{registry.host}/{repository}@{digest}"):
            try:
                client.images.remove(name, force=True)
            except docker.errors.ImageNotFound:
                pass


def test_an_air_gapped_host_gets_the_pulled_image_pushed(world, lab, pushed):
    registry, name, digest = pushed
    ref = f"{name}:1@{digest}"
    lab.docker("lab2", "rmi", "-f", f"{name}:1")
    manifest = world.write(BODY.format(ref=ref))
    plan = world.run("plan", str(manifest), "--host", "lab2")
    assert plan.returncode == 0, plan.stderr
    assert f"→ pull+push: not on the engine; pulled here from {name}@{digest}, then sent to lab2" in plan.stdout, plan.stdout
    up = world.run("up", str(manifest), "--host", "lab2")
    assert up.returncode == 0, up.stderr
    assert f"image      {name}:1: pulled here" in up.stderr and f"image      {name}:1: loaded" in up.stderr, up.stderr
    ran = world.run("exec", "hello", "--host", "lab2", "--env", world.container)
    assert ran.returncode == 0 and ran.stdout == "pulled, then pushed\n", ran.stderr
    again = world.run("up", str(manifest), "--host", "lab2")
    assert again.returncode == 0, again.stderr
    assert "pulled here" not in again.stderr and "loaded" not in again.stderr, again.stderr
    replan = world.run("plan", str(manifest), "--host", "lab2")
    assert "→ present" in replan.stdout, replan.stdout
