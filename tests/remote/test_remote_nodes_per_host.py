"""The preflight of a run across nodes on the SSH lab (real sshd and Docker engine per host) with
two simulated Ascend hosts that differ as shared servers do: each host's root at a path of its
own, other physical cards (lab1 holds 0-1, lab2 4-5, as `up` picks free cards per host), and the
newer driver files (/etc/hccn.conf, driver/tools with hccn_tool, driver/topo, driver/include) on
lab1 only. The preflight passes, saying what is each host's own and warning about the files one
container lacks; a container setting that changes the run (another shm size, set through the
same manifest file) still blocks, and so do cards of another model (npu-smi's listing)."""

from __future__ import annotations

import json
import re
import shutil

import docker
import hostsim
import pytest

from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: npu, cards: 2}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container: {{network: host, shm_size: "${{ENVCTL_TEST_SHM:-64m}}"}}
entrypoints:
  show:
    run: echo one node
    nodes:
      launcher: none
      run: echo "rank=$ENVCTL_NODE_RANK visible=$ASCEND_RT_VISIBLE_DEVICES"
"""
ROOTS = {"lab1": "/root/npu-a", "lab2": "/root/npu-other-b"}
CARDS = {"lab1": "0-1", "lab2": "4-5"}
ONLY_ON_LAB1 = ("/etc/hccn.conf", "/usr/local/Ascend/driver/include", "/usr/local/Ascend/driver/tools",
                "/usr/local/Ascend/driver/topo")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-nodes-per-host") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def test_other_cards_roots_and_driver_files_pass_and_another_shm_size_blocks(world, lab, tarball):
    for host, extras in (("lab1", True), ("lab2", False)):
        root = world.remote(host, ROOTS[host])
        hostsim.npu_host(root, cards=8, driver_extras=extras)
        world.cleanups.append(lambda root=root: shutil.rmtree(root))
    world.write_inventory(**{h: {"root": ROOTS[h], "cards": CARDS[h]} for h in ("lab1", "lab2")})
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    for host in ("lab1", "lab2"):
        up = world.run("up", str(manifest), "--host", host)
        assert up.returncode == 0, up.stderr

    ready = world.run("doctor", "--nodes", "lab1,lab2")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    out = ready.stdout
    assert "ready: the nodes can run together" in out and "BLOCKED" not in out, out
    assert re.search(r"^1 +lab2 +.* warn$", out, re.M), out
    for path in ONLY_ON_LAB1:
        assert f"  lab2: warning: {path} is in lab1's container but not in its own (passed where the host has it)" in out
    assert (f"  lab2: its host's own (may differ): host root {ROOTS['lab2']} (lab1: {ROOTS['lab1']}); cards 4,5 "
            "(lab1: 0,1); card device nodes /dev/davinci4 /dev/davinci5 (lab1: /dev/davinci0 /dev/davinci1); "
            "mount sources of ") in out, out

    as_json = world.run("doctor", "--nodes", "lab1,lab2", "--json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)["nodes"]
    assert [r["result"] for r in rows] == ["ok", "warn"] and rows[0]["per_host"] == []
    assert "cards 4,5 (lab1: 0,1)" in rows[1]["per_host"] and rows[1]["problems"] == []

    ran = world.run("exec", "show", "--nodes", "lab1,lab2")  # and the run starts
    assert ran.returncode == 0, ran.stderr
    assert "[0 lab1] rank=0 visible=0,1" in ran.stdout and "[1 lab2] rank=1 visible=0,1" in ran.stdout, ran.stdout

    # The same manifest file brought up on lab2 with another shm size: its digest is the same,
    # the containers are not.
    up = world.run("up", str(manifest), "--host", "lab2", env=world.environ(ENVCTL_TEST_SHM="128m"))
    assert up.returncode == 0, up.stderr
    blocked = world.run("doctor", "--nodes", "lab1,lab2")
    assert blocked.returncode == 5, blocked.stdout + blocked.stderr
    assert re.search(r"^1 +lab2 +.* BLOCKED$", blocked.stdout, re.M), blocked.stdout
    assert "  lab2: container shm size 128m differs from lab1's 64m" in blocked.stdout, blocked.stdout
    assert "blocked: the nodes cannot run together" in blocked.stdout
    refused = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert refused.returncode == 5 and refused.stdout == "", refused.stderr
    assert "  lab2: container shm size 128m differs from lab1's 64m" in refused.stderr

    # Back to lab1's settings, but lab2's npu-smi lists other cards (910A): another card model blocks.
    up = world.run("up", str(manifest), "--host", "lab2")
    assert up.returncode == 0, up.stderr
    hostsim.executable(world.remote("lab2", ROOTS["lab2"]) / "usr/local/bin/npu-smi",
                       "#!/bin/sh\ncat <<'OUT'\n" + hostsim.npu_smi_table("23.0.rc2", 8, {}, [], "910A") + "OUT\n")
    other_model = world.run("doctor", "--nodes", "lab1,lab2", "--json")
    assert other_model.returncode == 5, other_model.stderr
    rows = json.loads(other_model.stdout)["nodes"]
    assert [r["card_model"] for r in rows] == ["910B", "910A"]
    assert rows[1]["problems"] == ["card model 910A differs from lab1's 910B"], rows[1]
