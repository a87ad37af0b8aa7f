"""A detached server on a lab host that prints a passed secret: its log on that host holds what
it printed, and `envctl logs ENTRY --host` (cat over SSH) and `logs ENTRY -f --host` (tail -f
over SSH) mask the value as it arrives here, with the token in this machine's environment."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from support import IMAGE
from test_remote_nodes import tarball  # noqa: F401 (a fixture)

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  pass_env: [HF_TOKEN]
entrypoints:
  web:
    run: >-
      mkdir -p /www && echo ok > /www/health && echo "token=$HF_TOKEN and examples" && echo "web serving" &&
      exec httpd -f -vv -p 8000 -h /www
    ports: [8000]
    ready: {{http: /health, timeout: 60}}
"""


def test_logs_of_a_remote_detached_server_mask_the_token(world, lab, tarball):  # noqa: F811
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    token = "hf_" + uuid.uuid4().hex
    env = world.environ(HF_TOKEN=token)
    assert world.run("up", str(manifest), "--host", "lab1", env=env).returncode == 0
    where = ("--host", "lab1", "--env", world.container)
    started = world.run("exec", "web", "--detach", *where, env=env)
    assert started.returncode == 0, started.stderr
    log = next(line.split()[1] for line in started.stdout.splitlines() if line.startswith("log "))
    assert token.encode() in world.remote("lab1", log).read_bytes()  # what the server printed, on its host

    shown = world.run("logs", "web", *where, env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("token=*** and examples\nweb serving\n"), shown.stdout
    assert token not in shown.stdout + shown.stderr

    follower = subprocess.Popen([sys.executable, "-m", "envctl", "logs", "web", "-f", *where], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
    seen = ""
    try:
        deadline = time.monotonic() + 60
        while "web serving" not in seen and time.monotonic() < deadline:
            line = follower.stdout.readline()
            if not line:
                break
            seen += line
    finally:
        follower.kill()
        follower.wait()
    assert seen.startswith("token=*** and examples\nweb serving\n"), seen + follower.stderr.read()
    assert token not in seen

    stopped = world.run("stop", "web", *where, env=env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
