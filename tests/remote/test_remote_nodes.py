"""One run across two SSH lab hosts (`exec ENTRYPOINT --nodes lab1,lab2`): real sshd, a real
Docker engine per host, host networking on the lab's shared subnet. The entrypoint is a small sh
script (launcher `none`) that prints the contract it got and checks the hostfile, so the test
sees exactly what each node's process was handed; a node whose environment differs is blocked
by the preflight before anything starts."""

from __future__ import annotations

import re

import docker
import pytest

from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container: {{network: host}}
entrypoints:
  show:
    run: echo one node
    nodes:
      launcher: none
      run: |
        echo "rank=$ENVCTL_NODE_RANK of $ENVCTL_NNODES master=$MASTER_ADDR:$MASTER_PORT same=$ENVCTL_MASTER_ADDR:$PET_MASTER_PORT"
        echo "ifname=$ENVCTL_IFNAME gloo=$GLOO_SOCKET_IFNAME world=$ENVCTL_WORLD_SIZE run=$ENVCTL_RUN_ID rankvar=$${{RANK-unset}}"
        test "$(head -n 1 "$ENVCTL_HOSTFILE")" = "$MASTER_ADDR slots=1" && echo "hostfile starts with the master"
        test "$(wc -l < "$ENVCTL_HOSTFILE")" -eq 2 && echo "hostfile has 2 lines"
        test -s "$ENVCTL_RUN_DIR/nodes.json" && echo "nodes.json is there"
  fail:
    run: echo one node
    nodes:
      launcher: none
      run: |
        if [ "$ENVCTL_NODE_RANK" = 1 ]; then echo "rank 1 gives up"; exit 3; fi
        echo "rank 0 waits"; sleep 300; echo "rank 0 was not stopped"
  single:
    run: echo "no nodes here"
"""


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-nodes") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def _up_both(world, tarball):
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    for host in ("lab1", "lab2"):
        up = world.run("up", str(manifest), "--host", host)
        assert up.returncode == 0, up.stderr
    return manifest


def test_one_run_across_two_hosts_gets_one_contract_and_stops_together(world, lab, tarball):
    _up_both(world, tarball)

    shown = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    master = lab.ip("lab1")
    for rank, host in ((0, "lab1"), (1, "lab2")):
        mine = [line for line in lines if line.startswith(f"[{rank} {host}] ")]
        assert f"[{rank} {host}] rank={rank} of 2 master={master}:29500 same={master}:29500" in mine, shown.stdout
        assert f"[{rank} {host}] ifname=eth0 gloo=eth0 world=2 " in mine[1] and mine[1].endswith("rankvar=unset")
        assert mine[2:] == [f"[{rank} {host}] hostfile starts with the master", f"[{rank} {host}] hostfile has 2 lines",
                            f"[{rank} {host}] nodes.json is there"], shown.stdout
    run_ids = set(re.findall(r"run=(\S+)", shown.stdout))
    assert len(run_ids) == 1, shown.stdout  # one run id on both nodes
    run_id = run_ids.pop()
    assert "BLOCKED" not in shown.stderr and re.search(r"^1 +lab2 +" + re.escape(world.container), shown.stderr, re.M)
    for rank, host in ((0, "lab1"), (1, "lab2")):  # each node's log in its own workspace
        logs = sorted(world.remote(host, f"{world.data_dir()}/workspaces/{world.container}/logs").glob(f"show-*-node{rank}.log"))
        assert len(logs) == 1, shown.stderr
        assert f"rank={rank} of 2" in logs[0].read_text()
        run_dir = world.remote(host, f"{world.data_dir()}/workspaces/{world.container}/nodes/{run_id}")
        assert (run_dir / "hostfile").read_text() == f"{master} slots=1\n{lab.ip('lab2')} slots=1\n"

    failed = world.run("exec", "fail", "--nodes", "lab1,lab2")
    assert failed.returncode == 3, failed.stderr
    assert "[1 lab2] rank 1 gives up" in failed.stdout and "[0 lab1] rank 0 waits" in failed.stdout
    assert "rank 0 was not stopped" not in failed.stdout
    assert "node 1 (lab2) failed first: exit code 3; envctl stopped the others" in failed.stderr
    assert re.search(r"^\[0 lab1\] stopped by envctl \(SIGINT\), exit code \d+", failed.stderr, re.M), failed.stderr
    assert "    rank 1 gives up" in failed.stderr and "    rank 0 waits" in failed.stderr  # each node's last lines
    assert "sleep 300" not in lab.docker("lab1", "top", world.container).stdout  # nothing left running there

    single = world.run("exec", "single", "--nodes", "lab1,lab2")
    assert single.returncode == 2 and "entrypoint single" in single.stderr and "nodes:" in single.stderr, single.stderr
    alone = world.run("exec", "show", "--nodes", "lab1")
    assert alone.returncode == 2 and "--nodes needs two or more hosts" in alone.stderr, alone.stderr

    changed = world.write(BODY.format(image=IMAGE, tarball=tarball).replace("{network: host}", "{network: host, env: {A: b}}"))
    up = world.run("up", str(changed), "--host", "lab2")  # lab2 now differs from lab1
    assert up.returncode == 0, up.stderr
    blocked = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert blocked.returncode == 5, blocked.stderr
    assert re.search(r"^1 +lab2 +.* BLOCKED$", blocked.stderr, re.M), blocked.stderr
    assert "\n  lab2: container env A: not set as on lab1 (values not shown: they may hold secrets)\n" in blocked.stderr, \
        blocked.stderr
    assert blocked.stdout == ""  # nothing started
