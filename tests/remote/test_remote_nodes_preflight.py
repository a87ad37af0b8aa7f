"""The preflight of a run across nodes on the SSH lab (real sshd, a Docker engine per host, the
lab's switch): `doctor --nodes` and `plan --nodes` starting nothing; a partitioned node named
before anything starts; the master port blocked by a firewall on the master; and the address
choice on hosts that also have Docker's bridges (docker0 and br-* with the same private subnets
on every host, which look shared and lead nowhere: gpustack #2275) and a second subnet the
nodes share (a data-plane link): the right interface, or a stop listing the candidates and the
key or flag to choose.

The test image is BusyBox (no python: the port check uses its nc). The lab's hosts share one
kernel clock, so a host whose clock is off is simulated where envctl reads it: the host's bash,
which sshd starts for every command and which reads ~/.bashrc then (Debian builds bash with
SSH_SOURCE_BASHRC), runs a `date` shifted by a number of seconds; the skew rules themselves are
in tests/unit/test_nodes_clocks.py."""

from __future__ import annotations

import json
import re
import subprocess

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
        echo "rank=$ENVCTL_NODE_RANK of $ENVCTL_NNODES master=$MASTER_ADDR:$MASTER_PORT ifname=$ENVCTL_IFNAME gloo=$GLOO_SOCKET_IFNAME"
        echo "hostfile: $(tr '\\n' ' ' < "$ENVCTL_HOSTFILE")"
  single:
    run: echo "no nodes here"
"""
DATA_NET = "192.168.213"  # the data-plane link's subnet, inside the lab's namespaces only
BRIDGES = (("docker0", "172.17.0.1/16"), ("br-0a1b2c3d4e5f", "172.18.0.1/16"))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-nodes-preflight") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def _up_both(world, tarball):
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    for host in ("lab1", "lab2"):
        up = world.run("up", str(manifest), "--host", host)
        assert up.returncode == 0, up.stderr
    return manifest


def _row(text: str, host: str) -> list[str]:
    """The preflight table's line of `host`, split in its columns."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[0].isdigit() and fields[1] == host:
            return fields
    raise AssertionError(f"no table line for {host} in:\n{text}")


def _nothing_started(world, lab):
    for host in ("lab1", "lab2"):
        workspace = world.remote(host, f"{world.data_dir()}/workspaces/{world.container}")
        assert not list((workspace / "logs").glob("show-*")), host  # no node's log
        assert not (workspace / "nodes").exists() or not list((workspace / "nodes").iterdir()), host  # no run dir
        assert "tr " not in lab.docker(host, "top", world.container).stdout


def test_doctor_and_plan_show_the_run_and_start_nothing(world, lab, tarball):
    manifest = _up_both(world, tarball)
    master = lab.ip("lab1")

    checked = world.run("doctor", "--nodes", "lab1,lab2")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    first, second = _row(checked.stdout, "lab1"), _row(checked.stdout, "lab2")
    assert first[-7:] == ["0", "(ref)", master, "eth0", "listen", "ok", "ok"], checked.stdout
    assert second[-4:-1] == [lab.ip("lab2"), "eth0", "ok"], checked.stdout
    # lab2's clock is lab1's: ok, unless this machine is so loaded that no reading came back
    # within a second and the skew cannot be told (a warning, which says so)
    assert second[-1] == "ok" or ("warning: clock" in checked.stdout and "cannot tell" in checked.stdout), checked.stdout
    assert re.fullmatch(r"[+-]\d+\.\d{3}s", second[-6]) and re.fullmatch(r"±\d+\.\d{3}", second[-5]), checked.stdout
    assert checked.stdout.rstrip().endswith("ready: the nodes can run together")

    as_json = world.run("doctor", world.name, "--nodes", "lab1,lab2", "--entrypoint", "show", "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["blocked"] is False and document["master"] == {"addr": master, "port": 29500}
    assert [(n["rank"], n["host"], n["reach"], n["problems"]) for n in document["nodes"]] == \
        [(0, "lab1", "listen ok", []), (1, "lab2", "ok", [])]
    assert all("cannot tell" in w for n in document["nodes"] for w in n["warnings"]), document  # see above

    planned = world.run("plan", str(manifest), "--nodes", "lab1,lab2", "--entrypoint", "show")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"node 1 lab2: address {lab.ip('lab2')} on eth0, 1 process(es), master {master}:29500" in planned.stdout
    assert f"rank=1 of 2 master={master}:29500 ifname=eth0 gloo=eth0" in planned.stdout  # the command as it reads there
    assert "  env       ENVCTL_NODE_RANK=1" in planned.stdout and "  env       RANK=" not in planned.stdout
    with_args = world.run("plan", str(manifest), "--nodes", "lab1,lab2", "-e", "show", "--", "--lr", "1e-4 two")
    assert with_args.returncode == 0, with_args.stdout + with_args.stderr  # arguments after -- as exec appends them
    appended = [line for line in with_args.stdout.splitlines() if line.endswith("--lr '1e-4 two'")]
    assert len(appended) == 2 and all('echo "hostfile: ' in line for line in appended), with_args.stdout
    assert "`envctl exec show --nodes lab1,lab2 -- --lr '1e-4 two'` runs this" in with_args.stdout
    plan_json = json.loads(world.run("plan", str(manifest), "--nodes", "lab1,lab2", "-e", "show", "--json").stdout)
    assert plan_json["run_id"] is None and plan_json["launcher"] == "none" and not plan_json["blocked"]
    assert [(p["rank"], p["host"], p["ifname"], p["env"]["ENVCTL_NODE_RANK"]) for p in plan_json["plan"]] == \
        [(0, "lab1", "eth0", "0"), (1, "lab2", "eth0", "1")]
    assert plan_json["plan"][1]["env"]["ENVCTL_HOSTFILE"] == "/envctl/nodes/RUN_ID/hostfile"
    _nothing_started(world, lab)

    single = world.run("plan", str(manifest), "--nodes", "lab1,lab2", "--entrypoint", "single")
    assert single.returncode == 2 and "does not say it can run on several nodes" in single.stderr, single.stderr
    no_entry = world.run("plan", str(manifest), "--nodes", "lab1,lab2")
    assert no_entry.returncode == 2 and "--entrypoint" in no_entry.stderr, no_entry.stderr


def test_a_partitioned_node_is_named_and_nothing_starts(world, lab, tarball):
    _up_both(world, tarball)
    lab.partition("lab2")  # its packets dropped in the switch: SSH to it hangs, then times out

    run = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert run.returncode == 5, run.stderr
    assert run.stdout == ""  # no node's output: nothing ran
    assert _row(run.stderr, "lab2")[-1] == "BLOCKED" and _row(run.stderr, "lab1")[-1] == "ok", run.stderr
    assert re.search(r"^  lab2: cannot be used: .*(cannot connect|timed out|no answer)", run.stderr, re.M), run.stderr
    assert "nothing was started" in run.stderr and "Traceback" not in run.stderr
    _nothing_started(world, lab)

    checked = world.run("doctor", "--nodes", "lab2,lab1", "--json")  # lab2 as the master now
    assert checked.returncode == 5, checked.stderr
    document = json.loads(checked.stdout)
    assert document["blocked"] and document["master"] is None
    # lab1's clock cannot be compared with an unread node 0's: said, not blocking
    assert [(n["host"], n["result"]) for n in document["nodes"]] == [("lab2", "BLOCKED"), ("lab1", "warn")]
    assert document["nodes"][1]["warnings"] == ["node 0's clock was not read"]
    assert document["problems"] == ["the master address, interfaces and port are chosen once every node can be used"]


@pytest.mark.parametrize("target, said, cell", [
    (["DROP"], "timed out", "timed out"),  # a firewall that drops: the connect waits out its timeout
    (["REJECT", "--reject-with", "tcp-reset"], "refused", "refused"),  # one that refuses
])
def test_the_master_port_blocked_by_a_firewall_on_the_master_stops_the_run(world, lab, tarball, target, said, cell):
    _up_both(world, tarball)
    rule = ["INPUT", "-p", "tcp", "--dport", "29500", "-j", *target]  # SSH (22) still passes
    added = lab.run_in("lab1", "iptables", "-w", "-I", *rule)
    assert added.returncode == 0, added.stderr
    world.cleanups.append(lambda: lab.run_in("lab1", "iptables", "-w", "-D", *rule))

    run = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert run.returncode == 5 and run.stdout == "", run.stdout + run.stderr
    row = _row(run.stderr, "lab2")
    assert " ".join(row).endswith(f" {cell} BLOCKED"), run.stderr
    assert re.search(rf"^  lab2: its container cannot connect to the master {re.escape(lab.ip('lab1'))}:29500: .*{said}",
                     run.stderr, re.M | re.I), run.stderr
    _nothing_started(world, lab)


@pytest.fixture
def extra_links(lab):
    """Docker's bridges on lab1 and lab2 (their subnets on both, as every Docker host has them)
    and a function adding a data-plane link between the two; all removed afterwards."""
    added: list[tuple[str, str]] = []

    def ip(host: str, *argv: str) -> None:
        done = lab.run_in(host, "ip", *argv)
        assert done.returncode == 0, done.stderr

    def bridges() -> None:
        for host in ("lab1", "lab2"):
            for name, cidr in BRIDGES:
                ip(host, "link", "add", name, "type", "bridge")
                added.append((host, name))
                ip(host, "addr", "add", cidr, "dev", name)
                ip(host, "link", "set", name, "up")

    def data_link() -> None:
        # From this namespace: a lab host's private /run hides the named namespaces (/run/netns)
        made = subprocess.run(["ip", "-n", lab.host("lab1").netns, "link", "add", "dp0", "type", "veth", "peer", "name",
                               "dp0", "netns", lab.host("lab2").netns], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        added.append(("lab1", "dp0"))  # removing one end removes the pair
        for host, last in (("lab1", 1), ("lab2", 2)):
            ip(host, "addr", "add", f"{DATA_NET}.{last}/24", "dev", "dp0")
            ip(host, "link", "set", "dp0", "up")

    yield bridges, data_link
    for host, name in reversed(added):
        lab.run_in(host, "ip", "link", "del", name)


def test_bridges_are_skipped_and_a_second_shared_subnet_needs_a_choice(world, lab, tarball, extra_links):
    add_bridges, add_data_link = extra_links
    _up_both(world, tarball)
    add_bridges()
    master = lab.ip("lab1")

    skipped = world.run("exec", "show", "--nodes", "lab1,lab2")  # docker0 and br-* look shared, lead nowhere
    assert skipped.returncode == 0, skipped.stderr
    assert f"[1 lab2] rank=1 of 2 master={master}:29500 ifname=eth0 gloo=eth0" in skipped.stdout, skipped.stdout

    add_data_link()  # now two subnets every node has an address in: eth0's and dp0's
    ambiguous = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert ambiguous.returncode == 5 and ambiguous.stdout == "", ambiguous.stderr
    for word in ("2 subnets every node shares", f"{master}/24 on eth0", f"{DATA_NET}.1/24 on dp0",
                 "data_addr:", "--master-addr", f"lab2: {lab.ip('lab2')}/24 on eth0, {DATA_NET}.2/24 on dp0"):
        assert word in ambiguous.stderr, ambiguous.stderr
    assert "docker*" in ambiguous.stderr and "172.17.0.1/16" not in ambiguous.stderr  # skipped, and said so

    by_flag = world.run("exec", "show", "--nodes", "lab1,lab2", "--master-addr", f"{DATA_NET}.1")
    assert by_flag.returncode == 0, by_flag.stderr
    for rank, host in ((0, "lab1"), (1, "lab2")):  # lab2's address on the master's subnet, its route through dp0
        assert f"[{rank} {host}] rank={rank} of 2 master={DATA_NET}.1:29500 ifname=dp0 gloo=dp0" in by_flag.stdout
        assert f"[{rank} {host}] hostfile: {DATA_NET}.1 slots=1 {DATA_NET}.2 slots=1" in by_flag.stdout

    world.write_inventory(lab1={"data_addr": f"{DATA_NET}.1"}, lab2={"data_addr": f"{DATA_NET}.2"},
                          **{h: {} for h in lab.names if h not in ("lab1", "lab2")})
    by_inventory = world.run("plan", str(world.manifest), "--nodes", "lab1,lab2", "-e", "show", "--json")
    assert by_inventory.returncode == 0, by_inventory.stderr
    plans = json.loads(by_inventory.stdout)["plan"]
    assert [(p["address"], p["ifname"], p["env"]["GLOO_SOCKET_IFNAME"]) for p in plans] == \
        [(f"{DATA_NET}.1", "dp0", "dp0"), (f"{DATA_NET}.2", "dp0", "dp0")]

    on_bridge = world.run("doctor", "--nodes", "lab1,lab2", "--master-addr", "172.17.0.1")
    assert on_bridge.returncode == 5, on_bridge.stdout
    assert "lab1: 172.17.0.1 is on docker0, a bridge or loopback interface" in on_bridge.stdout, on_bridge.stdout


def test_a_node_whose_clock_is_off_is_blocked_and_nothing_starts(world, lab, tarball):
    _up_both(world, tarball)
    bashrc = lab.path("lab2", "/root/.bashrc")  # lab2's private home
    bashrc.write_text('date() { t=$(command date +%s.%N); command date -d "@$(( ${t%.*} + 120 )).${t#*.}" "$@"; }\n')
    world.cleanups.append(lambda: bashrc.unlink(missing_ok=True))

    run = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert run.returncode == 5 and run.stdout == "", run.stdout + run.stderr
    row = _row(run.stderr, "lab2")
    skew, uncertainty = float(row[-6].rstrip("s")), float(row[-5].lstrip("±"))
    assert row[-1] == "BLOCKED" and abs(skew - 120) <= uncertainty + 0.001, run.stderr  # 120 s, within what it says
    assert re.search(r"^  lab2: clock \+1[12]\d\.\d{3} s from node 0's \(±\d+\.\d{3} s, round trip \d+ ms\), more than the "
                     r"1 s allowed: synchronise the clocks", run.stderr, re.M), run.stderr
    assert _row(run.stderr, "lab1")[-1] == "ok"
    _nothing_started(world, lab)


def test_a_host_with_two_networks_uses_the_one_the_other_node_shares(world, lab, tarball):
    """lab1 has eth0 on the lab's subnet and eth1 on the subnet behind it, where hidden1 (reached
    through lab1) has its only address: lab1,hidden1 run over eth1; lab2 and hidden1 share no
    subnet at all, which stops the run listing each node's addresses."""
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    for host in ("lab1", "lab2", "hidden1"):
        up = world.run("up", str(manifest), "--host", host)
        assert up.returncode == 0, up.stderr
    behind = lab.ip("hidden1")  # 10.213.(N+1).13; lab1's eth1 is .1 on that subnet
    lab1_eth1 = behind.rsplit(".", 1)[0] + ".1"

    run = world.run("exec", "show", "--nodes", "lab1,hidden1")
    assert run.returncode == 0, run.stderr
    assert f"[0 lab1] rank=0 of 2 master={lab1_eth1}:29500 ifname=eth1 gloo=eth1" in run.stdout, run.stdout
    assert f"[1 hidden1] rank=1 of 2 master={lab1_eth1}:29500 ifname=eth0 gloo=eth0" in run.stdout, run.stdout

    apart = world.run("doctor", "--nodes", "lab2,hidden1")
    assert apart.returncode == 5, apart.stdout
    assert "no subnet that every node has an address in" in apart.stdout, apart.stdout
    assert f"hidden1: {behind}/24 on eth0" in apart.stdout and f"lab2: {lab.ip('lab2')}/24 on eth0" in apart.stdout


def test_a_container_not_on_its_hosts_network_is_blocked(world, lab, tarball):
    """Addresses are read on the hosts; a container on network none cannot reach them: the
    identity check says so, and the port check from that container fails too."""
    manifest = _up_both(world, tarball)
    isolated = world.write(BODY.format(image=IMAGE, tarball=tarball).replace("{network: host}", "{network: none}"))
    assert isolated == manifest  # the same file, rewritten: lab2's environment is made anew
    up = world.run("up", str(isolated), "--host", "lab2")
    assert up.returncode == 0, up.stderr

    run = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert run.returncode == 5 and run.stdout == "", run.stdout + run.stderr
    assert f"lab2: container {world.container} runs on network 'none', not the host's" in run.stderr, run.stderr
    assert re.search(r"^  lab2: its container cannot connect to the master \S+:29500: ", run.stderr, re.M), run.stderr
    _nothing_started(world, lab)
