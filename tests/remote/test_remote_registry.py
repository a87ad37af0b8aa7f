"""Pulled images (`image.pull`) on lab hosts, from real registries (Debian's docker-registry,
tests/servers/registry.py):

- an air-gapped host (`fetch: push`, the inventory's default) reaches no registry: this
  machine's engine pulls the image, and it goes to the host as a `docker save` tarball through
  the tarball push path, is loaded there, and runs. A second `up` finds it there by the config
  digest recorded for the pinned manifest digest (`docker save` keeps no RepoDigests) and moves
  nothing;
- a host with `fetch: remote` pulls itself, through the mirror its inventory entry names
  (`mirrors: {registries: ...}`), which only it is given: the plan names that mirror and where it
  was set, and the host's engine tags the canonical name."""

from __future__ import annotations

import uuid

import docker
import pytest

from servers.registry import Registry, copy, push_busybox, reachable_from

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


def test_a_host_that_pulls_itself_goes_through_its_own_mirror(world, lab, pushed, tmp_path):
    from sshlab_system import netns_path

    origin, name, digest = pushed
    repository = name.split("/", 1)[1]
    with Registry(tmp_path / "mirror") as mirror:
        assert copy(origin, mirror, repository, "1", f"quay.io/{repository}") == digest
        reachable_from(str(netns_path(lab.host("lab1").netns)), mirror.port)  # lab1's loopback reaches it
        ref = f"quay.io/{repository}:1@{digest}"
        lab.docker("lab1", "rmi", "-f", f"quay.io/{repository}:1")
        manifest = world.write(BODY.format(ref=ref))
        world.write_inventory(lab1={"fetch": "remote", "mirrors": {"registries": {"quay.io": f"{mirror.host}/quay.io"}}})
        plan = world.run("plan", str(manifest), "--host", "lab1")
        assert plan.returncode == 0, plan.stderr
        assert f"→ pull: not on the engine; lab1 pulls {mirror.host}/quay.io/{repository}@{digest}" in plan.stdout, plan.stdout
        assert f"mirror {mirror.host}/quay.io (set in inventory " in plan.stdout and "(host lab1)" in plan.stdout, plan.stdout
        up = world.run("up", str(manifest), "--host", "lab1")
        assert up.returncode == 0, up.stderr
        assert f"through mirror {mirror.host}" in up.stderr, up.stderr
        inspected = lab.docker("lab1", "image", "inspect", "--format", "{{json .RepoDigests}}", f"quay.io/{repository}:1")
        assert digest in inspected.stdout, inspected.stdout + inspected.stderr
        ran = world.run("exec", "hello", "--host", "lab1", "--env", world.container)
        assert ran.returncode == 0 and ran.stdout == "pulled, then pushed\n", ran.stderr
        lab.docker("lab1", "rm", "-f", world.container)
        lab.docker("lab1", "rmi", "-f", f"quay.io/{repository}:1", f"{mirror.host}/quay.io/{repository}@{digest}")


def test_several_air_gapped_hosts_at_once(world, lab, pushed):
    """`up --hosts lab2,lab3`: each host's thread pulls here (the engine shares the download),
    writes the tarball under a name of its own and pushes it; both run the image."""
    origin, name, digest = pushed
    for host in ("lab2", "lab3"):
        lab.docker(host, "rmi", "-f", f"{name}:1")
    manifest = world.write(BODY.format(ref=f"{name}:1@{digest}"))
    up = world.run("up", str(manifest), "--hosts", "lab2,lab3")
    assert up.returncode == 0, up.stderr
    for host in ("lab2", "lab3"):
        ran = world.run("exec", "hello", "--host", host, "--env", world.container)
        assert ran.returncode == 0 and ran.stdout == "pulled, then pushed\n", ran.stderr
    pulled = world.base / "cache" / "pulled"
    assert [p.name for p in pulled.iterdir()] == [p.name for p in pulled.glob("*.tar")] != []  # no partial file left
