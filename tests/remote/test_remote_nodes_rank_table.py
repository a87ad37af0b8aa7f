"""`exec ENTRYPOINT --nodes lab1,lab2 --rank-table` on two simulated Ascend hosts of the SSH lab
(real sshd and Docker engine per host; device nodes, driver files and a stand-in hccn_tool
printing the driver's recorded output under each host's root): the HCCL rank table v1.0 is
built from hccn_tool on each node, checked against the v1.0 schema (tests/fixtures/hccl), written
to every node's per-run directory and named by RANK_TABLE_FILE; the hccn_tool checks (device IP
present, link UP, /etc/hccn.conf agreeing, no IP twice) stop the run before anything starts;
`plan --nodes --rank-table` shows the same table and RANK_TABLE_FILE, writing nothing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import docker
import hccnsim
import hostsim
import jsonschema
import pytest

from support import IMAGE
from testimages import save_image

SCHEMA = json.loads((Path(__file__).parents[1] / "fixtures" / "hccl" / "rank-table-v1.0.schema.json").read_text())

BODY = """\
device: {{kind: npu, cards: 2}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container: {{network: host}}
entrypoints:
  table:
    run: echo one node
    nodes:
      launcher: none
      run: |
        echo "table=$${{RANK_TABLE_FILE-unset}} visible=$ASCEND_RT_VISIBLE_DEVICES"
        if [ -n "$${{RANK_TABLE_FILE-}}" ]; then tr -d ' \\n' < "$RANK_TABLE_FILE"; echo; fi
"""
# lab1 uses its cards 0 and 1, lab2 its cards 2 and 3 (the inventory's), as `up` picks free
# cards per host on shared servers: device_id is the physical id.
LAB1_IPS = {0: "192.168.100.101", 1: "192.168.101.101"}
LAB2_IPS = {2: "192.168.102.102", 3: "192.168.103.102"}
# Each host's simulated root at a path of its own (below the host's private /root): the nodes'
# container configs differ in what is the host's own (cards, device nodes, driver paths), which
# the preflight shows and does not block on.
ROOTS = {"lab1": "/root/npu-root-a", "lab2": "/root/npu-root-b"}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-nodes-rank-table") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def _blocked(world, *problems: str) -> None:
    ran = world.run("exec", "table", "--nodes", "lab1,lab2", "--rank-table")
    assert ran.returncode == 5, ran.stderr
    assert "the HCCL rank table cannot be built; nothing was started" in ran.stderr, ran.stderr
    for problem in problems:
        assert problem in ran.stderr, ran.stderr
    assert ran.stdout == ""  # no node started


def test_rank_table_across_two_ascend_hosts(world, lab, tarball):
    roots = {host: world.remote(host, ROOTS[host]) for host in ("lab1", "lab2")}
    for root in roots.values():
        hostsim.npu_host(root, cards=4)
        world.cleanups.append(lambda root=root: shutil.rmtree(root))
    hccnsim.hccn_tool(roots["lab1"], LAB1_IPS)
    hccnsim.hccn_tool(roots["lab2"], LAB2_IPS)
    hccnsim.hccn_conf(roots["lab1"], LAB1_IPS)
    hccnsim.hccn_conf(roots["lab2"], LAB2_IPS)
    world.write_inventory(lab1={"root": ROOTS["lab1"], "cards": "0-1"}, lab2={"root": ROOTS["lab2"], "cards": "2-3"})
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    for host in ("lab1", "lab2"):
        up = world.run("up", str(manifest), "--host", host)
        assert up.returncode == 0, up.stderr

    # plan --nodes --rank-table asks hccn_tool and checks as exec does, and writes nothing.
    planned = world.run("plan", str(manifest), "--nodes", "lab1,lab2", "-e", "table", "--rank-table")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "[1 lab2] rank table: device 2 192.168.102.102, device 3 192.168.103.102" in planned.stdout
    assert planned.stdout.count("  env       RANK_TABLE_FILE=/envctl/nodes/RUN_ID/hccl.json\n") == 2, planned.stdout
    assert "`envctl exec table --nodes lab1,lab2 --rank-table` runs this" in planned.stdout
    plan_json = json.loads(world.run("plan", str(manifest), "--nodes", "lab1,lab2", "-e", "table", "--rank-table",
                                     "--json").stdout)
    assert [s["server_id"] for s in plan_json["rank_table"]["server_list"]] == [lab.ip("lab1"), lab.ip("lab2")]
    assert [p["env"]["RANK_TABLE_FILE"] for p in plan_json["plan"]] == ["/envctl/nodes/RUN_ID/hccl.json"] * 2
    assert "env       RANK_TABLE_FILE=" not in world.run("plan", str(manifest), "--nodes", "lab1,lab2", "-e", "table").stdout
    for host in ("lab1", "lab2"):
        assert not world.remote(host, f"{world.data_dir()}/workspaces/{world.container}/nodes").exists()

    ran = world.run("exec", "table", "--nodes", "lab1,lab2", "--rank-table")
    assert ran.returncode == 0, ran.stderr
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(plan_json["rank_table"])
    assert re.search(r"^1 +lab2 +.* ok$", ran.stderr, re.M), ran.stderr  # other cards and root: not a difference
    assert (f"  lab2: its host's own (may differ): host root {ROOTS['lab2']} (lab1: {ROOTS['lab1']}); cards 2,3 "
            "(lab1: 0,1); card device nodes /dev/davinci2 /dev/davinci3 (lab1: /dev/davinci0 /dev/davinci1); ") in ran.stderr
    run_id = re.search(r"^run (\S+): master", ran.stderr, re.M).group(1)
    path = f"/envctl/nodes/{run_id}/hccl.json"
    assert f"[0 lab1] table={path} visible=" in ran.stdout and f"[1 lab2] table={path} visible=" in ran.stdout
    assert "[0 lab1] rank table: device 0 192.168.100.101, device 1 192.168.101.101" in ran.stderr
    assert "[1 lab2] rank table: device 2 192.168.102.102, device 3 192.168.103.102" in ran.stderr
    tables = [json.loads(world.remote(host, f"{world.data_dir()}/workspaces/{world.container}/nodes/{run_id}/hccl.json")
                         .read_text()) for host in ("lab1", "lab2")]
    assert tables[0] == tables[1]  # one table, on every node
    table = tables[0]
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(table)
    assert table["server_count"] == "2" == str(len(table["server_list"]))
    assert [s["server_id"] for s in table["server_list"]] == [lab.ip("lab1"), lab.ip("lab2")]  # rank order, data-plane IPs
    assert [[(d["device_id"], d["device_ip"], d["rank_id"]) for d in s["device"]] for s in table["server_list"]] == [
        [("0", "192.168.100.101", "0"), ("1", "192.168.101.101", "1")],  # physical ids,
        [("2", "192.168.102.102", "2"), ("3", "192.168.103.102", "3")],  # ranks numbered on
    ]
    for rank in ("0", "1"):  # what each container read is that file
        printed = [line for line in ran.stdout.splitlines() if line.startswith(f"[{rank} lab")][1]
        assert json.loads(printed.split("] ", 1)[1]) == table

    plain = world.run("exec", "table", "--nodes", "lab1,lab2")  # only when asked
    assert plain.returncode == 0 and "[0 lab1] table=unset" in plain.stdout, plain.stderr

    # A link down, on the second node's second card.
    hccnsim.hccn_tool(roots["lab2"], LAB2_IPS, links={3: "DOWN"})
    _blocked(world, "lab2: device 3: link status DOWN (hccn_tool -i 3 -link -g)")
    refused = world.run("plan", str(manifest), "--nodes", "lab1,lab2", "-e", "table", "--rank-table")
    assert refused.returncode == 5 and "lab2: device 3: link status DOWN" in refused.stderr, refused.stderr
    hccnsim.hccn_tool(roots["lab2"], LAB2_IPS)

    # A stale /etc/hccn.conf: it disagrees with the device's IP.
    hccnsim.hccn_conf(roots["lab1"], {**LAB1_IPS, 1: "192.168.101.199"})
    _blocked(world, "lab1: device 1: hccn_tool says IP 192.168.101.101 but /etc/hccn.conf has address_1=192.168.101.199")
    hccnsim.hccn_conf(roots["lab1"], LAB1_IPS)

    # The same device IP on both nodes.
    hccnsim.hccn_tool(roots["lab2"], {2: "192.168.100.101", 3: "192.168.103.102"})
    _blocked(world, "device IP 192.168.100.101 twice: lab1 device 0 and lab2 device 2")

    # hccn_tool fails for a device (it knows no IP for device 3).
    hccnsim.hccn_tool(roots["lab2"], {2: "192.168.102.102"})
    _blocked(world, "lab2: device 3: hccn_tool -i 3 -ip -g failed (exit code 1)")

    # No hccn_tool on lab2: its device IPs come from /etc/hccn.conf (links cannot be checked) ...
    hccnsim.no_hccn_tool(roots["lab2"])
    hccnsim.hccn_conf(roots["lab2"], LAB2_IPS)
    from_conf = world.run("exec", "table", "--nodes", "lab1,lab2", "--rank-table")
    assert from_conf.returncode == 0, from_conf.stderr
    assert "note: lab2: no hccn_tool at " in from_conf.stderr and "device IPs from /etc/hccn.conf, links not checked" in from_conf.stderr
    assert "[1 lab2] rank table: device 2 192.168.102.102, device 3 192.168.103.102" in from_conf.stderr
    # ... and a card missing there has no IP at all.
    hccnsim.hccn_conf(roots["lab2"], {2: "192.168.102.102"})
    _blocked(world, f"lab2: device 3 has no IP: no hccn_tool and no address_3 in {ROOTS['lab2']}/etc/hccn.conf")
