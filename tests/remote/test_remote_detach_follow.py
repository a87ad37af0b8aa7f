"""`envctl logs ENTRY -f --host` of a detached run on a remote host (the SSH lab) ends once the
run has ended, with what it wrote last (read after `tail -f` there is ended) and its exit code;
-f of a run that has ended prints its log and returns at once."""

from __future__ import annotations

import subprocess

import docker
import pytest

from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
entrypoints:
  finite:
    # Ends when the test says so (the file /tmp/go), its last line written just before it exits.
    run: echo "finite started"; while [ ! -e /tmp/go ]; do sleep 0.2; done; echo "finite last line"; exit 3
"""
GUARD_SECONDS = 120  # only a failure guard: a follow that never ends fails here instead of hanging


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-follow") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def test_following_a_remote_detached_run_ends_when_it_exits(world, lab, tarball):
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    assert world.run("up", str(manifest), "--host", "lab1").returncode == 0
    where = ("--host", "lab1", "--env", world.container)
    started = world.run("exec", "finite", "--detach", *where)
    assert started.returncode == 0, started.stderr
    follower = world.popen("logs", "finite", "-f", *where)
    try:
        seen = follower.stdout.readline()
        assert seen == "finite started\n", seen + follower.stderr.read()
        assert lab.docker("lab1", "exec", world.container, "touch", "/tmp/go").returncode == 0
        try:
            out, err = follower.communicate(timeout=GUARD_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail("logs -f --host did not end after the run it follows ended")
    finally:
        follower.kill()
        follower.wait()
    assert follower.returncode == 0, err
    assert (seen + out).splitlines() == ["finite started", "finite last line"], seen + out
    assert "finite ended (exit code 3)" in err, err

    again = world.run("logs", "finite", "-f", *where)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["finite started", "finite last line"], again.stdout
