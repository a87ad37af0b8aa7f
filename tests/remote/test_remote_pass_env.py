"""container.pass_env with --host: the token goes from this machine's environment to a lab
server's setup step and entrypoint (the Docker client runs here, the engine there, through the
SSH-forwarded socket), and is in no process's command line on either machine (the lab servers
share this kernel's PID namespace, so /proc shows theirs too), not in `docker inspect` there,
not in the server's workspace logs or envctl's data directory; a new token recreates nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from support import IMAGE
from test_remote_nodes import tarball  # noqa: F401 (a fixture)

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  pass_env: [HF_TOKEN]
setup:
  - name: use the token
    run: printf '%s' "$HF_TOKEN" > /tmp/seen-by-step; echo "step token=$HF_TOKEN"
entrypoints:
  show:
    run: printf '%s' "$HF_TOKEN" > /tmp/seen-by-entry; echo "entry token=$HF_TOKEN"
  wait:
    run: touch /tmp/entry-started; while [ ! -e /tmp/entry-go ]; do sleep 0.1; done
"""


def _argv_holding(secret: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if secret.encode() in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _inside(lab, world, command: str):
    return lab.docker("lab1", "exec", world.container, "sh", "-c", command)


def test_token_passed_over_ssh_and_kept_nowhere(world, lab, tarball):  # noqa: F811
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    token = "hf_" + uuid.uuid4().hex
    env = world.environ(HF_TOKEN=token)
    up = world.run("up", str(manifest), "--host", "lab1", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert token not in up.stdout + up.stderr and "step token=***" in up.stdout + up.stderr
    assert _inside(lab, world, "cat /tmp/seen-by-step").stdout == token

    inspected = lab.docker("lab1", "inspect", world.container)
    assert inspected.returncode == 0 and token not in inspected.stdout
    assert not [e for e in json.loads(inspected.stdout)[0]["Config"]["Env"] if e.startswith("HF_TOKEN")]

    shown = world.run("exec", "show", "--host", "lab1", "--env", world.container, env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "entry token=***\n"
    assert _inside(lab, world, "cat /tmp/seen-by-entry").stdout == token

    process = subprocess.Popen([sys.executable, "-m", "envctl", "exec", "wait", "--host", "lab1", "--env",
                                world.container], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while _inside(lab, world, "test -e /tmp/entry-started").returncode != 0:
            assert time.monotonic() < deadline, "the entrypoint did not start"
            time.sleep(0.1)
        assert _argv_holding(token) == []  # this machine, the lab server, its sshd, dockerd and the container
        assert _argv_holding("/tmp/entry-go"), "the scan does not see the container's processes"
        _inside(lab, world, "touch /tmp/entry-go")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()

    # Nothing kept on the server (workspace logs, envctl's data directory) or here.
    for root in (world.remote("lab1", world.data_dir()), world.base):
        for path in Path(root).rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path

    rotated = "hf_" + uuid.uuid4().hex
    before = json.loads(inspected.stdout)[0]["Id"]
    again = world.run("up", str(manifest), "--host", "lab1", "--json", env=world.environ(HF_TOKEN=rotated))
    assert again.returncode == 0, again.stderr
    executed = json.loads(again.stdout)["lab1"]["executed"]  # keyed by host with --host
    assert ["container", world.container, "unchanged"] in executed
    assert [a for a in executed if a[0] == "setup"] == [["setup", "use the token", "skip"]]
    assert json.loads(lab.docker("lab1", "inspect", world.container).stdout)[0]["Id"] == before


NODES_BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  network: host
  pass_env: [HF_TOKEN]
entrypoints:
  fetch:
    run: echo one node
    nodes:
      launcher: none
      run: |
        printf '%s' "$HF_TOKEN" > /tmp/seen-by-node
        echo "rank $ENVCTL_NODE_RANK token=$HF_TOKEN"
"""


def test_token_passed_to_every_node_of_a_run_across_nodes(world, lab, tarball):  # noqa: F811
    """exec --nodes: each node's process gets the value (given here, where every node's Docker
    client runs); the node lines envctl prints and the node logs show it masked."""
    manifest = world.write(NODES_BODY.format(image=IMAGE, tarball=tarball))
    token = "hf_" + uuid.uuid4().hex
    env = world.environ(HF_TOKEN=token)
    for host in ("lab1", "lab2"):
        up = world.run("up", str(manifest), "--host", host, env=env)
        assert up.returncode == 0, up.stdout + up.stderr
    ran = world.run("exec", "fetch", "--nodes", "lab1,lab2", env=env)
    said = ran.stdout + ran.stderr
    assert ran.returncode == 0, said
    assert token not in said and "rank 0 token=***" in said and "rank 1 token=***" in said, said
    for host in ("lab1", "lab2"):
        seen = lab.docker(host, "exec", world.container, "cat", "/tmp/seen-by-node")
        assert seen.stdout == token, (host, seen.stderr)
        for path in Path(world.remote(host, world.data_dir())).rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path
