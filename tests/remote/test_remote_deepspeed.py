"""A real DeepSpeed per-node launch across two SSH lab hosts (`exec ENTRYPOINT --nodes lab1,lab2`):
real sshd and Docker engine per host, host networking on the lab's shared subnet, DeepSpeed
0.19.8 on the CPU reference image's torch 2.13 (tests/images/cpu-deepspeed).

Each node runs the command the shipped chatglm2-npu `finetune` runs across nodes, `python -u -m
deepspeed.launcher.launch` with envctl's world info, node rank, master address and port (the
line DeepSpeed's pdsh runner starts on every host; deepspeed/launcher/multinode_runner.py), on
tests/remote/deepspeed_check.py. The test holds each node's launcher command line to
envctl.nodes.launchers.node_command and to the line DeepSpeed's own PDSHRunner builds from the
run's hostfile inside the container, checks the ranks, local ranks and world size the launcher
gave, and a gloo all-reduce across the hosts. On a CPU-only torch DeepSpeed picks its CPU
accelerator by itself (no DS_ACCELERATOR needed) and, without oneCCL's torch bindings, gloo
(deepspeed/accelerator/real_accelerator.py, cpu_accelerator.py).

A second entrypoint fails on rank 1 before the rendezvous: DeepSpeed's launcher exits with the
worker's code, envctl stops rank 0 (waiting at the rendezvous, which would wait for its timeout)
and reports node 1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import docker
import pytest

from cpu_images import ensure_deepspeed_image, load_on_lab, remove_from_lab
from envctl.nodes.contract import Contract, Node
from envctl.nodes.launchers import node_command

CHECK = Path(__file__).with_name("deepspeed_check.py")
HOSTS = ["lab1", "lab2"]
LAUNCH = """\
        set -e
        export PYTHONPATH="$PWD:$PYTHONPATH"
        python -u -m deepspeed.launcher.launch --world_info="$ENVCTL_DS_WORLD_INFO" --node_rank="$ENVCTL_NODE_RANK" \\
          --master_addr="$ENVCTL_MASTER_ADDR" --master_port="$ENVCTL_MASTER_PORT" deepspeed_check.py
"""
BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}}}
container: {{network: host, workdir: /job}}
artifacts:
  check: {{source: {check}, target: /job/deepspeed_check.py}}
entrypoints:
  allreduce:
    run: echo one node
    nodes:
      launcher: deepspeed
      run: |
{launch}
  rank1-fails:
    run: echo one node
    env: {{DSCHECK_FAIL_ON_NODE: "1"}}
    nodes:
      launcher: deepspeed
      run: |
{launch}
"""


@pytest.fixture(scope="module")
def deepspeed_image(lab_session):
    ref = ensure_deepspeed_image(docker.from_env())
    load_on_lab(lab_session, ref, HOSTS)
    yield ref
    remove_from_lab(lab_session, ref, HOSTS)


def _reports(stdout: str) -> dict[int, dict]:
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^\[(\d+) (\S+)\] DSCHECK (\{.*\})$", line)
        if match:
            rank = int(match.group(1))
            assert rank not in found, f"two reports from node {rank}:\n{stdout}"
            found[rank] = {**json.loads(match.group(3)), "host": match.group(2)}
    return found


def _contract(world, run_id: str) -> Contract:
    """The run as envctl wrote it into node 0's run directory (nodes.json)."""
    path = world.remote("lab1", f"{world.data_dir()}/workspaces/{world.container}/nodes/{run_id}/nodes.json")
    document = json.loads(path.read_text())
    nodes = tuple(Node(n["name"], n["address"], n["processes"], n["ifname"]) for n in document["nodes"])
    return Contract(nodes, document["master"]["port"], document["run_id"], "cpu")


def test_deepspeed_launches_each_node_as_its_multi_node_runner_would(world, lab, deepspeed_image):
    launch = "\n".join("        " + line if line else line for line in LAUNCH.splitlines())
    manifest = world.write(BODY.format(image=deepspeed_image, check=CHECK, launch=launch.rstrip()))
    for host in HOSTS:
        up = world.run("up", str(manifest), "--host", host, timeout=600)
        assert up.returncode == 0, up.stderr

    done = world.run("exec", "allreduce", "--nodes", ",".join(HOSTS), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_id = re.search(r"^run (\S+): master ", done.stderr, re.M).group(1)
    contract = _contract(world, run_id)
    master, second = lab.ip("lab1"), lab.ip("lab2")
    assert [n.address for n in contract.nodes] == [master, second] and contract.master_addr == master
    assert contract.world_info() == {master: [0], second: [0]}

    reports = _reports(done.stdout)
    assert sorted(reports) == [0, 1], done.stdout[-3000:]
    for rank, report in reports.items():
        assert report["host"] == HOSTS[rank]
        expected = [*node_command("deepspeed", contract, rank), "deepspeed_check.py"]
        assert report["launch_argv"] == expected  # envctl's line: python -u -m deepspeed.launcher.launch ...
        # DeepSpeed's own runner's line. Its runner also passes its default --enable_each_rank_log,
        # the string "None", which launch.py reads as off (`!= "None"`): left out of envctl's line.
        pdsh = [part for part in report["pdsh_line"] if part != "--enable_each_rank_log=None"]
        assert pdsh == [report["executable"], *expected[1:]]
        assert report["env"] == {"RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2", "CROSS_RANK": str(rank),
                                 "CROSS_SIZE": "2", "LOCAL_SIZE": "1", "MASTER_ADDR": master,
                                 "MASTER_PORT": str(contract.master_port)}
        assert report["local_rank_argument"] == 0 and report["dist_rank"] == rank and report["dist_world_size"] == 2
        assert (report["accelerator"], report["backend"]) == ("cpu", "gloo")
        assert report["allreduce"] == 3.0  # (0 + 1) + (1 + 1), summed across the two hosts
        assert report["addresses"] == [master, second]  # rank 0 on lab1, rank 1 on lab2
        assert report["cwd"] == "/job" and report["pythonpath"].split(":")[0] == "/job"  # as DeepSpeed's runner sets it


def test_a_failing_rank_ends_deepspeeds_launcher_and_envctl_stops_the_other(world, lab, deepspeed_image):
    launch = "\n".join("        " + line if line else line for line in LAUNCH.splitlines())
    manifest = world.write(BODY.format(image=deepspeed_image, check=CHECK, launch=launch.rstrip()))
    for host in HOSTS:
        up = world.run("up", str(manifest), "--host", host, timeout=600)
        assert up.returncode == 0, up.stderr

    failed = world.run("exec", "rank1-fails", "--nodes", ",".join(HOSTS), timeout=600)
    assert failed.returncode == 3, failed.stdout[-3000:] + failed.stderr[-3000:]
    assert "[1 lab2] node 1 gives up before the rendezvous" in failed.stdout
    assert "node 1 (lab2) failed first: exit code 3; envctl stopped the others" in failed.stderr
    assert re.search(r"^\[0 lab1\] stopped by envctl \(SIGINT\), exit code \d+", failed.stderr, re.M), failed.stderr
    assert "DSCHECK" not in failed.stdout  # rank 0 never got past the rendezvous
    assert "deepspeed.launcher.launch" not in lab.docker("lab1", "top", world.container).stdout  # nothing left there
