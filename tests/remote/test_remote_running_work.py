"""Running work on a remote host (the SSH lab): observed through the forwarded Docker socket
alone, it blocks `up` that would recreate the container and `down`, unless --force, and
`status --host` lists it with its log on that host."""

from __future__ import annotations

import json

import docker
import pytest

from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  env: {{LEARNING_RATE: "{rate}"}}
entrypoints:
  train:
    run: echo started; while [ ! -f /envctl/release ]; do sleep 0.2; done; echo done; exit 7
"""


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-running") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def test_a_training_on_a_remote_host_blocks_up_and_down_and_survives(world, lab, tarball):
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball, rate="1e-4"))
    up = world.run("up", str(manifest), "--host", "lab1")
    assert up.returncode == 0, up.stderr
    training = world.popen("exec", "train", "--host", "lab1", "--env", world.container)
    try:
        assert training.stdout.readline() == "started\n"
        status = world.run("status", "--host", "lab1", "--json")
        assert status.returncode == 0, status.stderr
        runs = [r["runs"] for r in json.loads(status.stdout) if r["name"] == world.container][0]
        assert [(r["kind"], r["name"]) for r in runs] == [("entrypoint", "train")]
        workspace = f"{world.data_dir()}/workspaces/{world.container}"
        assert runs[0]["log"].startswith(f"{workspace}/logs/train-")  # the host's path: the log lives there

        world.write(BODY.format(image=IMAGE, tarball=tarball, rate="3e-4"))
        planned = world.run("plan", str(manifest), "--host", "lab1")
        assert planned.returncode == 5, planned.stderr
        assert "→ recreate: changed: env LEARNING_RATE" in planned.stdout
        blocker = f"recreating {world.container} would kill running work: train since "
        assert blocker in planned.stdout and f"log {runs[0]['log']}" in planned.stdout
        refused = world.run("up", str(manifest), "--host", "lab1")
        assert refused.returncode == 5 and blocker in refused.stderr
        down = world.run("down", world.container, "--host", "lab1")
        assert down.returncode == 5 and f"removing {world.container} would kill running work: train" in down.stderr
        assert world.containers("lab1") == [f"{world.container} running"]
        assert training.poll() is None
    finally:
        touched = lab.docker("lab1", "exec", world.container, "touch", "/envctl/release")
        assert touched.returncode == 0, touched.stderr
        out, _ = training.communicate(timeout=120)
    assert (training.returncode, out) == (7, "done\n")
    again = world.run("up", str(manifest), "--host", "lab1")  # nothing runs any more
    assert again.returncode == 0, again.stderr
    assert "recreated: env LEARNING_RATE changed" in again.stderr
