"""A remote host whose engine has the containerd image store (`containerd_lab`: one lab host
running the newer Docker of tests/ensure-containerd-engine.sh), reached over SSH like the others.
There an image ID is the manifest digest; users pin the config digest, as `docker inspect` on the
classic store shows it."""

from __future__ import annotations

import re

import pytest

from engines import CLASSIC, SNAPSHOTTER_DRIVER_TYPE, connect
from testimages import save_image
from world import PREFIX, World

REF = "envctl-it/remote-containerd:1"

BODY = """\
device: {{kind: cpu}}
image:
  ref: {ref}{pin}
  tarball: {{source: {tarball}}}
entrypoints:
  hello:
    run: cat /etc/remote-containerd
"""


@pytest.fixture(scope="module")
def classic_tarball(tmp_path_factory):
    """(a `docker save` by Docker 20.10 of an image made for this module, its config digest)."""
    path = tmp_path_factory.mktemp("remote-containerd") / "image.tar"
    config_digest = save_image(connect(CLASSIC).client, {"etc/remote-containerd": b"on the containerd store\n"}, path, REF)
    return path, config_digest


@pytest.fixture
def world(containerd_lab, tmp_path, request):
    name = PREFIX + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:30].strip("-")
    made = World(containerd_lab, tmp_path, name)
    (tmp_path / "home").mkdir()
    made.write_inventory(lab1={})
    yield made
    made.clean()


def test_the_lab_host_runs_the_containerd_store_and_keeps_the_machines_tools(containerd_lab):
    info = containerd_lab.ssh("lab1", "docker", "info", "--format", "'{{.ServerVersion}} {{json .DriverStatus}}'")
    assert info.returncode == 0, info.stderr
    version, status = info.stdout.strip().split(" ", 1)
    assert int(version.split(".")[0]) >= 28 and SNAPSHOTTER_DRIVER_TYPE in status, info.stdout
    # Only dockerd runs from the newer root: an SSH session on the host has the machine's /usr.
    machine_python = containerd_lab.ssh("lab1", "python3", "--version")
    assert machine_python.returncode == 0 and machine_python.stdout.startswith("Python 3"), machine_python.stderr


@pytest.mark.parametrize("pinned", [False, True], ids=["unpinned", "pinned config digest"])
def test_up_and_exec_on_a_containerd_store_host(world, containerd_lab, classic_tarball, pinned):
    tarball, config_digest = classic_tarball
    containerd_lab.docker("lab1", "rmi", "-f", REF)  # not left by the other case
    manifest = world.write(BODY.format(ref=REF, pin=f"\n  id: {config_digest}" if pinned else "", tarball=tarball))
    up = world.run("up", str(manifest), "--host", "lab1")
    assert up.returncode == 0, up.stderr
    assert f"image      {REF}: loaded" in up.stderr
    on_host = containerd_lab.docker("lab1", "image", "inspect", "--format", "{{.Id}}", REF).stdout.strip()
    assert on_host.startswith("sha256:") and on_host != config_digest  # the manifest digest there
    ran = world.run("exec", "hello", "--host", "lab1", "--env", world.container)
    assert ran.returncode == 0 and ran.stdout == "on the containerd store\n", ran.stderr
    again = world.run("up", str(manifest), "--host", "lab1")
    assert again.returncode == 0 and f"image      {REF}: present" in again.stderr, again.stderr
