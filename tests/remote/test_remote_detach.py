"""A detached server on a remote host (the SSH lab): `exec --detach --host` starts it in the
host's container through the forwarded Docker socket, waits for its readiness from inside the
container, and returns; the server outlives envctl's SSH connections; `status`, `logs -f`, the
plan's running-work blocker and `stop` reach it with --host; its log lies on that host."""

from __future__ import annotations

import json
import time

import docker
import pytest

from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  env: {{GREETING: "{greeting}"}}
entrypoints:
  web:
    run: mkdir -p /www && echo ok > /www/health && echo "web serving" && exec httpd -f -vv -p 8000 -h /www
    ports: [8000]
    ready: {{http: /health, timeout: 60}}
"""


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-detach") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def test_a_detached_server_on_a_remote_host(world, lab, tarball):
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball, greeting="hello"))
    up = world.run("up", str(manifest), "--host", "lab1")
    assert up.returncode == 0, up.stderr
    where = ("--host", "lab1", "--env", world.container)
    started = world.run("exec", "web", "--detach", *where)
    assert started.returncode == 0, started.stderr
    assert "ready    web" in started.stdout and "on lab1" in started.stdout, started.stdout
    workspace = f"{world.data_dir()}/workspaces/{world.container}"
    log = next(line.split()[1] for line in started.stdout.splitlines() if line.startswith("log "))
    assert log.startswith(f"{workspace}/logs/web-"), started.stdout

    # envctl and its SSH connections are gone: the server still answers, in the host's container.
    world.close_connections()
    answer = lab.docker("lab1", "exec", world.container, "wget", "-q", "-O", "-", "http://127.0.0.1:8000/health")
    assert (answer.returncode, answer.stdout) == (0, "ok\n"), answer.stderr
    assert "web serving" in world.remote("lab1", log).read_text()  # the log is on the host

    status = world.run("status", "--host", "lab1", "--json")
    assert status.returncode == 0, status.stderr
    runs = [r["runs"] for r in json.loads(status.stdout) if r["name"] == world.container][0]
    assert [(r["name"], r["detached"], r["ports"], r["log"]) for r in runs] == [("web", True, [8000], log)], runs

    follower = world.popen("logs", "web", "-f", *where)
    try:
        deadline, seen = time.monotonic() + 60, ""
        while "web serving" not in seen and time.monotonic() < deadline:
            line = follower.stdout.readline()
            if not line:
                break
            seen += line
        assert "web serving" in seen, seen + follower.stderr.read()
    finally:
        follower.kill()
        follower.wait()

    world.write(BODY.format(image=IMAGE, tarball=tarball, greeting="changed"))
    planned = world.run("plan", str(manifest), "--host", "lab1")
    assert planned.returncode == 5, planned.stderr
    assert f"recreating {world.container} would kill running work: web (detached) since " in planned.stdout
    refused = world.run("up", str(manifest), "--host", "lab1")
    assert refused.returncode == 5 and "web (detached)" in refused.stderr, refused.stderr

    stopped = world.run("stop", "web", *where)
    assert stopped.returncode == 0 and "stopped  web (detached)" in stopped.stdout, stopped.stdout + stopped.stderr
    again = world.run("stop", "web", *where)
    assert again.returncode == 4 and "no run of web is running" in again.stderr and "on lab1" in again.stderr
    gone = lab.docker("lab1", "exec", world.container, "wget", "-q", "-O", "-", "http://127.0.0.1:8000/health")
    assert gone.returncode != 0


def test_a_server_on_the_loopback_only_on_a_remote_host_is_said_unreachable(world, lab, tarball):
    """The readiness check reaches a server bound to 127.0.0.1 from inside the host's
    container; nothing outside it does, which exec --detach --host says."""
    body = BODY.replace("-p 8000 -h /www", "-p 127.0.0.1:8000 -h /www")
    manifest = world.write(body.format(image=IMAGE, tarball=tarball, greeting="hello"))
    assert world.run("up", str(manifest), "--host", "lab1").returncode == 0
    where = ("--host", "lab1", "--env", world.container)
    started = world.run("exec", "web", "--detach", *where)
    assert started.returncode == 0, started.stderr
    assert "ready    web" in started.stdout and "on lab1" in started.stdout, started.stdout
    assert "warning: web listens on 127.0.0.1:8000 only, inside the container" in started.stderr, started.stderr
    stopped = world.run("stop", "web", *where)
    assert stopped.returncode == 0, stopped.stderr
