"""The pure parts of `exec --nodes` before anything starts: the preflight comparison and its
table, `ss -Hltn` read for the master port, and the inventory's data_addr. Hosts, engines and
the run itself are tested on the SSH lab (tests/remote/test_remote_nodes.py)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from envctl.containers import LABEL_SPEC
from envctl.errors import EXIT_HOST_NOT_READY, EnvctlError, ManifestError
from envctl.multinode import prepare
from envctl.remote.inventory import load_inventory


@dataclass
class RecordedHost:
    """A host whose commands answer with recorded output (ss as iproute2 6.1 prints it)."""

    name: str
    answers: dict = field(default_factory=dict)

    def run(self, argv, timeout=30):
        return self.answers[tuple(argv)]


def site(rank, name, image="sha256:" + "a" * 64, digest="sha256:" + "b" * 64, shm="1g", driver=None, cards=(),
         status="running", lock=None, network="host", models=None, models_problem=None):
    spec = {"name": "envctl-x", "image": "x:1", "cards": [], "devices": [], "env": {}, "shm_size": shm,
            "network_mode": network, "mounts": [{"source": "/w", "target": "/envctl", "read_only": False}]}
    container = SimpleNamespace(attrs={"HostConfig": {"NetworkMode": network},  # as docker inspect has it
                                       "Config": {"Labels": {LABEL_SPEC: json.dumps(spec)}}})
    environment = SimpleNamespace(name=f"envctl-x-{name}", status=status, config_hash="c1", cards=cards, workspace="/w",
                                  container=container)
    the_plan = SimpleNamespace(driver=SimpleNamespace(found=driver, kind="cpu"), host_root="/", container=None)
    return prepare.NodeSite(rank, SimpleNamespace(name=name, data_addr=None), None, environment, the_plan, image, digest,
                            lock_digest=lock, card_models=models, card_models_problem=models_problem)


def test_equal_nodes_pass_and_the_table_has_one_line_each():
    rows = prepare.preflight([site(0, "lab1"), site(1, "lab2")])
    assert [r.problems for r in rows] == [(), ()]
    lines = prepare.table(rows)
    assert lines[0].split() == ["rank", "host", "container", "image", "ID", "manifest", "driver", "procs", "clock",
                                "address", "port", "result"]
    assert [line.split()[:2] + line.split()[-1:] for line in lines[1:]] == [["0", "lab1", "ok"], ["1", "lab2", "ok"]]


@pytest.mark.parametrize("changes, what", [
    ({"image": "sha256:" + "d" * 64}, "image ID sha256:dddddddddddd differs from lab1's sha256:aaaaaaaaaaaa"),
    ({"digest": "sha256:" + "e" * 64}, "manifest sha256:eeeeeeeeeeee differs from lab1's sha256:bbbbbbbbbbbb"),
    ({"shm": "2g"}, "container shm size 2g differs from lab1's 1g"),
    ({"cards": (0, 1)}, "cards 2 differs from lab1's 1"),
    ({"driver": "23.0.rc3"}, "driver 23.0.rc3 differs from lab1's -"),
    ({"status": "exited"}, "container envctl-x-lab2 is exited"),
    ({"lock": "sha256:" + "f" * 64}, "manifest.lock sha256:ffffffffffff differs from lab1's -"),
    ({"network": "bridge"}, "container envctl-x-lab2 runs on network 'bridge', not the host's: set container: "
                            "{network: host} in the manifest and run envctl up again"),
])
def test_a_node_unlike_node_0_is_blocked_naming_what_differs(changes, what):
    rows = prepare.preflight([site(0, "lab1"), site(1, "lab2", **changes)])
    assert rows[0].problems == () and rows[1].problems == (what,)
    lines = prepare.table(rows)
    assert lines[2].split()[-1] == "BLOCKED" and lines[-1] == f"  lab2: {what}"


SS = ("LISTEN 0      128          0.0.0.0:22        0.0.0.0:*\n"
      "LISTEN 0      4096       127.0.0.1:29500     0.0.0.0:*\n"
      "LISTEN 0      128             [::]:29501        [::]:*\n"
      "LISTEN 0      64      [fe80::1%eth0]:29503      [::]:*\n")


def _host(out):
    from envctl.hosts.base import CommandResult

    return RecordedHost("lab1", {("ss", "-H", "-l", "-t", "-n"): CommandResult(0, out, "")})


def test_the_master_port_moves_past_ports_in_use_on_any_address():
    host = _host(SS)
    assert prepare.listening_ports(host) == {22, 29500, 29501, 29503}
    assert prepare.master_port(host, "torchrun", {}, None) == 29502
    assert prepare.master_port(host, "msrun", {}, None) == 8118
    assert prepare.master_port(host, "none", {"master_port": 20001}, None) == 20001


def test_an_explicit_master_port_in_use_is_refused():
    with pytest.raises(EnvctlError) as caught:
        prepare.master_port(_host("LISTEN 0 128 0.0.0.0:6000 0.0.0.0:*\n"), "torchrun", {}, 6000)
    assert caught.value.exit_code == EXIT_HOST_NOT_READY and "port 6000 is in use on lab1" in caught.value.message


def test_the_inventory_gives_a_data_addr_and_refuses_one_that_is_no_ipv4_address(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent("""\
        hosts:
          lab1: {data_addr: 192.168.10.5}
          lab2: {}
        """))
    inventory = load_inventory(path, {})
    assert [h.data_addr for h in inventory.hosts.values()] == ["192.168.10.5", None]
    for bad, shown in (("lab1.example", "'lab1.example'"), ("10.0.0.1/24", "'10.0.0.1/24'"), (5, "an integer")):
        path.write_text(f"hosts:\n  lab1: {{data_addr: {bad}}}\n")
        with pytest.raises(ManifestError) as caught:
            load_inventory(path, {})
        assert str(caught.value).endswith(f"hosts.lab1.data_addr: expected an IPv4 address (the host's data-plane "
                                          f"address), got {shown}"), str(caught.value)


def test_the_table_shows_clock_address_port_and_says_warnings_and_the_runs_own_problems():
    rows = [prepare.Row(0, "lab1", "envctl-x", "sha256:aaaa", "sha256:bbbb", "-", 1, (), clock="0 (ref)",
                        address="10.0.0.1 eth1", reach="listen ok"),
            prepare.Row(1, "lab2", "envctl-x", "sha256:aaaa", "sha256:bbbb", "-", 1, (), clock="+0.004s ±0.003",
                        address="10.0.0.2 eth1", reach="not checked", warnings=("not checked: no nc",)),
            prepare.unreachable_row(2, "lab3", "cannot be used: cannot connect")]
    lines = prepare.table(rows, ["the master address ... chosen once every node can be used"])
    assert lines[1].split()[-7:] == ["0", "(ref)", "10.0.0.1", "eth1", "listen", "ok", "ok"]
    assert lines[2].endswith("+0.004s ±0.003  10.0.0.2 eth1  not checked  warn")
    assert lines[3].split() == ["2", "lab3", "-", "-", "-", "-", "0", "-", "-", "-", "BLOCKED"]
    assert lines[4:] == ["  lab3: cannot be used: cannot connect", "  lab2: warning: not checked: no nc",
                         "  the master address ... chosen once every node can be used"]
    assert rows[1].as_dict()["result"] == "warn" and rows[2].as_dict()["problems"] == ["cannot be used: cannot connect"]


NO_NPU_SMI = "npu-smi not found under /srv/lab2"


@pytest.mark.parametrize("first, second, problems, warnings", [
    ({"models": ("910B",)}, {"models": ("910B",)}, (), ()),
    ({"models": ("910B",)}, {"models": ("910A",)}, ("card model 910A differs from lab1's 910B",), ()),
    ({"models": ("MLU370-X8",)}, {"models": ("MLU370-X4", "MLU370-X8")},
     ("card model MLU370-X4, MLU370-X8 differs from lab1's MLU370-X8",), ()),
    ({"models": ("910B",)}, {"models_problem": NO_NPU_SMI}, (),
     (f"its card model could not be read ({NO_NPU_SMI}): not compared with lab1's 910B",)),
    ({"models_problem": "npu-smi exited 1: dcmi model initialized failed"}, {"models": ("910B",)}, (),
     ("card model 910B not compared: lab1's could not be read",)),
    ({}, {}, (), ()),  # no vendor tool for the family (cpu, cuda): nothing to compare
])
def test_card_models_are_compared_and_one_not_read_is_a_warning(first, second, problems, warnings):
    rows = prepare.preflight([site(0, "lab1", **first), site(1, "lab2", **second)])
    assert rows[0].problems == () and rows[0].warnings == ()
    assert rows[1].problems == problems and rows[1].warnings == warnings
    assert rows[1].as_dict()["card_model"] == (", ".join(second.get("models", ())) or "-")


def test_card_models_are_read_from_the_vendor_tool_for_the_environments_cards(tmp_path):
    import hostsim
    from envctl.hosts.local import LocalHost

    host = LocalHost(str(hostsim.npu_host(tmp_path / "npu", cards=4, model="910B3")))
    assert prepare.card_models("npu", host, (2, 3)) == (("910B3",), None)
    assert prepare.card_models("cpu", host, ()) == (None, None)
    bare = LocalHost(str(tmp_path / "bare"))
    models, problem = prepare.card_models("npu", bare, (0,))
    assert models is None and problem == f"npu-smi not found under {tmp_path / 'bare'}"
