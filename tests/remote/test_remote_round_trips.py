"""Round trips to an SSH host (issue 14): what a command asks the host comes in rounds, not one
ssh command per file or device check. Counted with ENVCTL_SSH_TRACE (envctl/remote/ssh.py),
one line per ssh process envctl starts; the answers are checked against this machine's own
reading of the same simulated host root (the lab host's root directory is the same path here)."""

from __future__ import annotations

import json
import shutil

import pytest

import hostsim
from envctl.devices import FAMILIES
from envctl.hosts.local import LocalHost


def _sessions(trace) -> list[str]:
    """The commands run on the host since the trace was last emptied (mux requests to the local
    master are no round trip and are left out)."""
    lines = trace.read_text().splitlines() if trace.exists() else []
    trace.write_text("")
    return [line for line in lines if line.startswith(("session ", "connection "))]


@pytest.fixture
def traced(world, monkeypatch, tmp_path):
    """(open, trace): `open()` gives lab1 as an SSHHost, as a command opens it."""
    from envctl.cli_remote import RemoteOptions, single_target

    trace = tmp_path / "ssh-trace"
    for key, value in world.environ(ENVCTL_SSH_TRACE=str(trace)).items():
        monkeypatch.setenv(key, value)
    return (lambda: single_target(RemoteOptions(("lab1",), None, None, None))), trace


@pytest.mark.parametrize("simulate", ["npu", "mlu"])
def test_every_device_probe_of_a_plan_comes_with_the_hosts_opening(world, lab, traced, simulate):
    root = lab.host_root("lab1")
    if simulate == "npu":
        hostsim.npu_host(root, cards=4)
    else:
        hostsim.mlu_host(root, cards=2)
    world.cleanups.append(lambda: [shutil.rmtree(p) for p in root.iterdir()])
    world.write_inventory(lab1={"root": str(root)})
    open_host, trace = traced
    world.close_connections()
    host = open_host()
    assert len(_sessions(trace)) == 1  # the connection, its facts and the probe round
    here = LocalHost(str(root))
    for family in FAMILIES.values():  # what every family's plan asks, answered as this machine reads it
        assert family.probe_driver(host) == family.probe_driver(here), family.kind
        for candidate in family.mount_candidates:
            assert host.exists(host.under_root(candidate)) == here.exists(here.under_root(candidate))
    devices = host.glob(host.under_root("/dev/*"))
    assert devices == here.glob(here.under_root("/dev/*")) and devices
    assert [p for p in devices if host.is_char_device(p)] == [p for p in devices if here.is_char_device(p)]
    for tool in ("cnmon", "npu-smi", "nvidia-smi"):
        assert host.which(tool) == here.which(tool)
    assert _sessions(trace) == []  # the driver files say the version: no vendor tool run either
    assert host.exists(f"{world.data_dir()}/nothing-here") is False  # outside the round: asked when asked
    assert len(_sessions(trace)) == 1


def test_a_second_command_on_the_live_master_asks_no_facts(world, traced):
    open_host, trace = traced
    world.close_connections()
    first = open_host()
    assert len(_sessions(trace)) == 1
    again = open_host()  # the master is up: home and engine as the first command read them
    assert (again.data_dir, again.docker_socket) == (first.data_dir, first.docker_socket)
    assert again.glob(again.under_root("/dev/*")) == first.glob(first.under_root("/dev/*"))
    ran = _sessions(trace)
    assert len(ran) == 1 and "HOME" not in ran[0]  # the probe round, started at the opening, and no facts
    world.close_connections()  # a new master: the facts are read again over it
    open_host()
    assert len(_sessions(trace)) == 1


def _cached_artifact(host, key: str, digit: str) -> tuple[str, dict]:
    """(entry, record) of a three-byte artifact placed in the host's cache with its record."""
    entry = f"{host.cache_root}/artifacts/file/{key}/weights"
    record = {"files": [{"path": "", "size": 3, "sha256": digit * 64}]}
    host.write_file(entry, b"abc")
    host.write_file(entry + ".json", json.dumps(record).encode())
    return entry, record


def test_an_artifact_record_is_read_once_until_something_runs_on_the_host(world, traced):
    open_host, trace = traced
    host = open_host()
    entry, record = _cached_artifact(host, "0123", "x")
    _sessions(trace)
    assert host.artifact_record(entry) == record
    assert host.artifact_record(entry) == record  # the plan's asks (its cache view, its copies)
    assert len(_sessions(trace)) == 1
    assert host.artifact_record(entry, fresh=True) == record  # the apply's check before it acts reads again
    assert len(_sessions(trace)) == 1
    host.remove_tree(entry)  # anything run there may change it: read again
    assert host.artifact_record(entry) is None
    assert len(_sessions(trace)) == 2


def test_the_next_command_reads_the_records_the_last_one_asked_with_its_probe_round(world, traced):
    open_host, trace = traced
    host = open_host()
    entry, record = _cached_artifact(host, "4567", "y")
    assert host.artifact_record(entry) == record
    _sessions(trace)
    again = open_host()  # on the live master: the probe round starts, with that record
    assert again.artifact_record(entry) == record
    assert again.glob(again.under_root("/dev/*"))
    assert len(_sessions(trace)) == 1  # the probe round, and no record read of its own
    world.lab.run_in("lab1", "truncate", "-s", "1", entry)  # cut short on the host: the guess is read afresh
    world.close_connections()
    third = open_host()
    assert third.artifact_record(entry) is None
    assert len(_sessions(trace)) == 1  # the opening: facts, probes and the record in one command


def test_a_directory_made_by_the_last_command_is_not_made_again_while_it_is_there(world, traced):
    open_host, trace = traced
    host = open_host()
    workspace = f"{host.workspace_root}/{world.container}"
    host.mkdirs(workspace)
    _sessions(trace)
    again = open_host()  # on the live master: its probe round asks whether that directory is there
    again.mkdirs(workspace)
    assert len(_sessions(trace)) == 1 and world.remote("lab1", workspace).is_dir()
    again.remove_tree(workspace)  # something ran there since the round: made again
    again.mkdirs(workspace)
    assert len(_sessions(trace)) == 2 and world.remote("lab1", workspace).is_dir()
