"""An SSH host whose connection is cut while `up` runs a setup step (tests/sshlab_faults.py:
the host's sshd sessions killed): `up` stops with a clear error naming the connection (exit 5,
no traceback), the step runs on in the container, and the next `up` resumes after it: a step
that succeeded meanwhile is not run a second time."""

from __future__ import annotations

import json
import time

import docker
import pytest

from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: "{tarball}"}}}}
setup:
  - name: long
    run: echo once >> /root/count; while [ ! -f /tmp/release ]; do sleep 0.2; done
  - name: after
    run: echo after > /root/after
"""


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("connection-lost") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def _until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.2)


def test_a_connection_cut_mid_step_stops_up_clearly_and_the_next_up_resumes_after_it(world, lab, tarball):
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    in_container = lambda *argv: lab.docker("lab3", "exec", world.container, *argv)  # noqa: E731
    up = world.popen("up", str(manifest), "--host", "lab3")
    _until(lambda: in_container("test", "-s", "/root/count").returncode == 0, "the step started")
    assert lab.drop_connections("lab3") > 0
    _, stderr = up.communicate(timeout=120)
    assert up.returncode == 5, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert "stopped answering" in stderr and "the SSH connection to lab3 or its engine went away" in stderr, stderr

    in_container("touch", "/tmp/release")  # the step, still running in the container, ends well
    _until(lambda: in_container("sh", "-c", "ls /var/lib/envctl/claims | grep -q .").returncode != 0,
           "the step let go of its claim")
    plan = world.run("plan", "--json", str(manifest), "--host", "lab3")
    assert plan.returncode == 0, plan.stderr
    assert [(s["name"], s["action"]) for s in json.loads(plan.stdout)["lab3"]["setup"]] == [("long", "skip"), ("after", "run")]
    again = world.run("up", "--json", str(manifest), "--host", "lab3")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["lab3"]["executed"][-2:] == [["setup", "long", "skip"], ["setup", "after", "run"]]
    assert in_container("cat", "/root/count", "/root/after").stdout == "once\nafter\n"
