"""The preflight's container comparison across nodes (envctl.multinode.node_config) on recorded
configs: each node's spec is planned by the real planner on a simulated host (device nodes and
driver files under its own root, as hostsim lays them out) and recorded as `up` records it (the
io.envctl.spec label); then compared as the preflight compares them. What is each host's own
(which cards, the root, driver files present on one host only) never blocks; a setting that
changes what the processes run with does."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import hostsim
import pytest

from envctl.cards import parse_cards
from envctl.containers import LABEL_SPEC
from envctl.hosts.local import LocalHost
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
from envctl.multinode import node_config, prepare
from envctl.observe import observe
from envctl.plan import Options, build_plan

NPU = """\
name: two-nodes
description: a run across nodes
device: {device}
image: {{ref: example/train:v1}}
container:
  network: host
  shm_size: ${{SHM:-16g}}
  {runtime}
  env: {{HCCL_CONNECT_TIMEOUT: "${{TIMEOUT:-1200}}"}}
  mounts: [{mounts}]
artifacts:
  weights: {{source: "hf://THUDM/chatglm3-6b@e46a14881eae", target: /models/chatglm3}}
entrypoints:
  train: {{run: bash train.sh, nodes: {{launcher: none}}}}
"""


def _plan(tmp_path: Path, host: str, cards: str, kind: str = "npu", runtime: str = "", mounts: str = "",
          environ: dict | None = None, workspace: str = "/ws"):
    manifest = tmp_path / "m" / "manifest.yaml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    device = "{kind: cpu}" if kind == "cpu" else f"{{kind: {kind}, cards: 2}}"
    manifest.write_text(NPU.format(device=device, runtime=runtime, mounts=mounts))
    environ = {"ENVCTL_CACHE": f"/cache-{host}", "ENVCTL_WORKSPACE": workspace, **(environ or {})}
    loaded = load(manifest, environ=environ, roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
    root = LocalHost(str(tmp_path / host))
    return build_plan(loaded, observe(root, loaded), Options(cards=parse_cards(cards) if cards else None, skip_driver_check=True), environ)


def _recorded(the_plan) -> dict:
    """The container as `docker inspect` shows what `up` created (its labels)."""
    labels = {LABEL_SPEC: json.dumps(the_plan.container.summary(), sort_keys=True, default=list)}
    return {"Config": {"Labels": labels}, "HostConfig": {"NetworkMode": "host"}}


def _site(rank: int, name: str, the_plan, attrs: dict | None = None, config_hash: str | None = None):
    container = SimpleNamespace(attrs=_recorded(the_plan) if attrs is None else attrs)
    environment = SimpleNamespace(name=the_plan.container.name, status="running", container=container,
                                  config_hash=config_hash or the_plan.container.config_hash(),
                                  cards=the_plan.container.cards, workspace="/ws")
    return prepare.NodeSite(rank, SimpleNamespace(name=name, data_addr=None), None, environment, the_plan,
                            "sha256:" + "a" * 64, "sha256:" + "b" * 64)


def _rows(*plans, names=("lab1", "lab2")):
    return prepare.preflight([_site(rank, name, p) for rank, (name, p) in enumerate(zip(names, plans))])


def test_npu_hosts_with_other_cards_roots_and_driver_files_pass_with_notes_and_warnings(tmp_path):
    hostsim.npu_host(tmp_path / "lab1", cards=4, driver_extras=True)  # hccn_tool, topo, /etc/hccn.conf
    hostsim.npu_host(tmp_path / "lab2", cards=4)  # none of those
    first, second = _plan(tmp_path, "lab1", "0-1"), _plan(tmp_path, "lab2", "2-3")
    assert first.container.config_hash() != second.container.config_hash()  # the whole hash cannot tell
    rows = _rows(first, second)
    assert rows[0].problems == rows[1].problems == ()
    assert rows[1].result == "warn"
    assert rows[1].warnings == tuple(
        f"{path} is in lab1's container but not in its own (passed where the host has it)"
        for path in ("/etc/hccn.conf", "/usr/local/Ascend/driver/include", "/usr/local/Ascend/driver/tools",
                     "/usr/local/Ascend/driver/topo"))
    notes = rows[1].notes
    assert f"host root {tmp_path / 'lab2'} (lab1: {tmp_path / 'lab1'})" in notes
    assert "cards 2,3 (lab1: 0,1)" in notes
    assert "card device nodes /dev/davinci2 /dev/davinci3 (lab1: /dev/davinci0 /dev/davinci1)" in notes
    assert any(n.startswith("mount sources of ") and "/models/chatglm3" in n and "/usr/local/dcmi" in n for n in notes)
    assert any(n.startswith("device host paths of ") and "/dev/davinci_manager" in n for n in notes)
    lines = prepare.table(rows)
    assert lines[-1].startswith("  lab2: its host's own (may differ): host root ")
    assert rows[1].as_dict()["per_host"] == list(notes) and rows[1].as_dict()["result"] == "warn"


def test_the_ascend_runtime_names_host_indices_per_host_and_the_container_indices_are_compared(tmp_path):
    for host in ("lab1", "lab2"):
        hostsim.npu_host(tmp_path / host, cards=8)
    first = _plan(tmp_path, "lab1", "0-1", runtime="runtime: ascend")
    second = _plan(tmp_path, "lab2", "6-7", runtime="runtime: ascend")
    assert first.container.env["ASCEND_VISIBLE_DEVICES"] != second.container.env["ASCEND_VISIBLE_DEVICES"]
    rows = _rows(first, second)
    assert rows[1].problems == () and rows[1].warnings == ()
    assert any(n.startswith("env ASCEND_VISIBLE_DEVICES digest ") for n in rows[1].notes)
    assert not any("ASCEND_RT_VISIBLE_DEVICES" in n for n in rows[1].notes)  # 0,1 in both containers


def test_mlu_hosts_with_other_cards_pass_and_cnmon_on_one_host_only_is_a_warning(tmp_path):
    hostsim.mlu_host(tmp_path / "lab1", cards=4)
    hostsim.mlu_host(tmp_path / "lab2", cards=4)
    (tmp_path / "lab2" / "usr/bin/cnmon").unlink()
    rows = _rows(_plan(tmp_path, "lab1", "0-1", kind="mlu"), _plan(tmp_path, "lab2", "2-3", kind="mlu"))
    assert rows[1].problems == ()
    assert rows[1].warnings == ("/usr/bin/cnmon is in lab1's container but not in its own (passed where the host has it)",)
    assert any(n.startswith("card device nodes /dev/cambricon_dev2 /dev/cambricon_dev3 /dev/cambricon_ipcm2")
               for n in rows[1].notes)


def test_other_workspaces_and_caches_are_the_hosts_own(tmp_path):
    rows = _rows(_plan(tmp_path, "lab1", None, kind="cpu", workspace="/home/alice/ws"),
                 _plan(tmp_path, "lab2", None, kind="cpu", workspace="/home/bob/ws"))
    assert rows[1].problems == () and rows[1].warnings == ()
    assert any(n.startswith("mount sources of ") and "/envctl" in n for n in rows[1].notes)


@pytest.mark.parametrize("second, said", [
    ({"environ": {"SHM": "32g"}}, "container shm size 32g differs from lab1's 16g"),
    ({"environ": {"TIMEOUT": "7200"}}, "container env HCCL_CONNECT_TIMEOUT: not set as on lab1 "
                                       "(values not shown: they may hold secrets)"),
    ({"runtime": "privileged: true"}, "container privileged True differs from lab1's False"),
    ({"mounts": "/data/ds:/datasets:ro"}, "container mounts differ from lab1's: here /datasets (ro); there none"),
])
def test_a_setting_that_changes_the_run_still_blocks(tmp_path, second, said):
    for host in ("lab1", "lab2"):
        hostsim.npu_host(tmp_path / host, cards=4)
    rows = _rows(_plan(tmp_path, "lab1", "0-1"), _plan(tmp_path, "lab2", "2-3", **second))
    assert said in rows[1].problems, rows[1].problems
    assert rows[1].result == "BLOCKED"


def test_a_mount_read_only_on_one_node_and_writable_on_the_other_blocks():
    def spec(read_only):
        return {"name": "envctl-x", "image": "x:1", "cards": [], "devices": [], "env": {},
                "mounts": [{"source": "/ws", "target": "/envctl", "read_only": False},
                           {"source": "/d", "target": "/data", "read_only": read_only}]}
    compared = node_config.compare(node_config.node_view(spec(False), "cpu"), node_config.node_view(spec(True), "cpu"),
                                   "lab1")
    assert compared.problems == ("container mounts differ from lab1's: here /data (rw); there /data (ro)",)


@pytest.mark.parametrize("kind, runtime, variables", [
    ("npu", "ascend", {"ASCEND_VISIBLE_DEVICES"}),  # the Ascend Docker Runtime reads host indices
    ("npu", None, set()),
    ("cuda", "nvidia", {"NVIDIA_VISIBLE_DEVICES"}),  # the NVIDIA container runtime reads host indices
    ("cuda", None, set()),
    ("mlu", None, set()),
    ("cpu", None, set()),
])
def test_the_variables_naming_host_cards_come_from_the_device_family(kind, runtime, variables):
    assert node_config.host_card_variables(kind, runtime) == variables


def test_a_container_without_its_spec_label_is_compared_from_its_plan_or_blocked(tmp_path):
    for host in ("lab1", "lab2"):
        hostsim.npu_host(tmp_path / host, cards=4)
    first, second = _plan(tmp_path, "lab1", "0-1"), _plan(tmp_path, "lab2", "2-3")
    bare = {"Config": {"Labels": {}}, "HostConfig": {"NetworkMode": "host"}}
    # Its hash is what the manifest gives on that host now: that plan's spec is its spec.
    rows = prepare.preflight([_site(0, "lab1", first), _site(1, "lab2", second, attrs=bare)])
    assert rows[1].problems == () and "cards 2,3 (lab1: 0,1)" in rows[1].notes
    # Otherwise there is nothing to compare: that node is blocked, saying how to mend it.
    rows = prepare.preflight([_site(0, "lab1", first), _site(1, "lab2", second, attrs=bare, config_hash="other")])
    assert rows[1].problems == (f"container {second.container.name} records no configuration envctl can compare "
                                f"(no {LABEL_SPEC} label): run envctl up for it again",)
    garbled = {"Config": {"Labels": {LABEL_SPEC: "{not json"}}, "HostConfig": {"NetworkMode": "host"}}
    assert node_config.recorded_spec(SimpleNamespace(attrs=garbled)) is None
