"""Round trips to an SSH host (issue 14): what a command asks the host comes in rounds, not one
ssh command per file or device check. Counted with ENVCTL_SSH_TRACE (envctl/remote/ssh.py),
one line per ssh process envctl starts; the answers are checked against this machine's own
reading of the same simulated host root (the lab host's root directory is the same path here)."""

from __future__ import annotations

import json
import re
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


def test_a_workspace_with_its_mark_is_not_made_again_while_it_is_there(world, traced):
    """up's make_workspace: the probe round reads the mark in each directory noted; one there
    with the same mark costs no command, a mark missing or another one costs one."""
    open_host, trace = traced
    host = open_host()
    workspace = f"{host.workspace_root}/{world.container}"
    host.make_workspace(workspace, "a" * 32)
    _sessions(trace)
    assert world.remote("lab1", f"{workspace}/.envctl-workspace").read_text() == "a" * 32 + "\n"
    again = open_host()  # on the live master: its probe round reads the directory and its mark
    again.make_workspace(workspace, "a" * 32)
    assert len(_sessions(trace)) == 1  # the opening's round alone
    third = open_host()
    third.make_workspace(workspace, "b" * 32)  # another container's mark: written
    assert len(_sessions(trace)) == 2
    assert world.remote("lab1", f"{workspace}/.envctl-workspace").read_text() == "b" * 32 + "\n"


# -- up: what a fresh up and an up of an environment already up ask the host and its engine --

UP_BODY = """\
device: {{kind: cpu}}
image: {{ref: {ref}, tarball: {{source: {tarball}}}}}
artifacts:
  weights: {{source: "{weights}", target: /models/weights.bin}}
setup:
  - name: look at the weights
    run: wc -c /models/weights.bin > /envctl/size.txt
"""
UP_REF = "envctl-it/round-trips:1"


@pytest.fixture(params=["classic", "containerd"], ids=["Docker 20.10", "containerd store"])
def up_world(request, tmp_path, monkeypatch):
    """(world, tarball, weights) on a lab whose lab1 runs the host's Docker 20.10 or the
    containerd-store Docker 28; envctl's ssh commands and engine requests traced."""
    import os
    import re as regex

    from engines import CLASSIC, connect
    from testimages import save_image
    from world import PREFIX, World

    lab = request.getfixturevalue("lab" if request.param == "classic" else "containerd_lab")
    name = PREFIX + regex.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:30].strip("-")
    world = World(lab, tmp_path, name)
    (tmp_path / "home").mkdir()
    world.write_inventory(lab1={})
    tarball = tmp_path / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/round-trips": b"1\n"}, tarball, UP_REF)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(2 << 20))  # a blob of its own (place.LARGE), no small file
    lab.docker("lab1", "rmi", "-f", UP_REF)
    world.cleanups.append(lambda: lab.docker("lab1", "rmi", "-f", UP_REF))
    yield world, tarball, weights
    world.clean()


def _up_traced(world, manifest, trace) -> tuple[list[str], list[str]]:
    """(ssh commands run on the host, engine requests) of one `up` of `manifest` on lab1."""
    trace.write_text("")
    done = world.run("up", str(manifest), "--host", "lab1", env=world.environ(ENVCTL_SSH_TRACE=str(trace)))
    assert done.returncode == 0, done.stderr
    lines = trace.read_text().splitlines()
    sessions = [line for line in lines if line.startswith(("session ", "connection "))]
    requests = [line.split(" ", 3)[3] for line in lines if line.startswith("api ")]
    return sessions, requests


def _count(requests: list[str], pattern: str) -> int:
    import re as regex

    return sum(1 for request in requests if regex.fullmatch(pattern, request))


CONTAINER_INSPECT = r"GET /v[\d.]+/containers/[0-9a-f]{64}/json"


def test_up_asks_the_host_and_its_engine_once_for_each_thing(up_world, tmp_path):
    world, tarball, weights = up_world
    manifest = world.write(UP_BODY.format(ref=UP_REF, tarball=tarball, weights=weights))
    trace = tmp_path / "trace"
    sessions, requests = _up_traced(world, manifest, trace)
    # The tarball is loaded in the session that pushed it, once the host checked its sha256
    # (one ssh command for both: transfer.push_then), never by a command of its own.
    # (The trace keeps a command's first 200 characters: _HOST_LOAD's start, `magic=`, shows.)
    assert not [s for s in sessions if "'magic=$(head -c 6" in s], sessions
    # The artifact's entry is read by the plan, not again before its push: the plan found it
    # missing, and only an entry the plan found in the cache can have left it.
    assert len([s for s in sessions if "--envctl-sizes--" in s]) == 1, sessions
    pushes = [s for s in sessions if "sha256_in()" in s]
    assert len(pushes) == 2, sessions  # the blob's push and the tarball's
    # Each in a session opened while up planned (the host's cache lacked the artifact), not one
    # opened after the plan: the bytes go without the channel's round trips first.
    assert all(" opened-ahead: sh -c " in s for s in pushes), pushes
    assert len([s for s in trace.read_text().splitlines() if s.startswith("standby ")]) == 2
    assert world.lab.docker("lab1", "image", "inspect", UP_REF).returncode == 0
    # The artifact (blobs alone) is assembled in its blob's push session: no tar stream of its own.
    assert not [s for s in sessions if "tar -xf -" in s], sessions
    assert world.remote("lab1", f"{world.data_dir()}/cache").is_dir()
    # The new container is created and started, never inspected (docker-py's create inspects it),
    # nor looked for first: the engine refuses a name in use (lifecycle._create_absent). The
    # only container listing is the plan's own.
    assert _count(requests, r"POST /v[\d.]+/containers/create\?name=\S+") == 1, requests
    assert _count(requests, r"GET /v[\d.]+/containers/json\?\S+") == 1, requests
    assert _count(requests, CONTAINER_INSPECT) == 0, requests
    # The setup step and its marker: one exec (the wrapper writes the marker), not two.
    assert _count(requests, r"POST /v[\d.]+/containers/[0-9a-f]{64}/exec") == 1, requests
    assert world.lab.docker("lab1", "exec", world.container, "cat", "/envctl/size.txt").stdout.split()[0] == str(2 << 20)
    # The image's ref after the load: looked up once (the plan's, the check before acting, then
    # after the load), not twice after the load.
    assert _count(requests, rf"GET /v[\d.]+/images/{re.escape(UP_REF)}/json") == 3, requests
    # Each of the tarball's IDs is looked up once, by the plan: its "load" is not second-guessed
    # by the image step (image_step.ensure_image's planned_load).
    by_id = [r for r in requests if re.fullmatch(r"GET /v[\d.]+/images/sha256:[0-9a-f]{64}/json", r)]
    assert by_id and len(by_id) == len(set(by_id)), requests

    sessions, requests = _up_traced(world, manifest, trace)  # already up
    # The host's cache had the artifact when it was opened: no session opened ahead of a push.
    assert not [s for s in trace.read_text().splitlines() if s.startswith("standby ")]
    # The container: the plan's inspection only (by the ID the up before noted: see the test of
    # the plan's rounds below), never by its name; the check before acting reads the engine's list.
    assert _count(requests, CONTAINER_INSPECT) == 1, requests
    assert _count(requests, rf"GET /v[\d.]+/containers/{re.escape(world.container)}/\S+") == 0, requests
    marker = world.lab.docker("lab1", "exec", world.container, "sh", "-c", "ls /var/lib/envctl/setup")
    assert len(marker.stdout.split()) == 1, marker.stdout  # the step's marker, written by the wrapper
    # The plan's engine requests that do not depend on each other go out together on a
    # connection of their own (observe_engine._Rounds): the image's ref, the baked images' list
    # and the container's list in one round. docker-py's list would carry its own defaults
    # (limit=-1, size=0, trunc_cmd=0); the round's carries only what it asks.
    plan_list = r"GET /v[\d.]+/containers/json\?all=1&filters=\S+"
    assert _count(requests, plan_list) == 1, requests
    # Before them, the engine's API version, asked once, by the early opening (SSHHost.ask_api_version);
    # beside them, the ping that opens docker-py's connection (answered before, among or after them).
    assert requests[0] == "GET /version" and _count(requests, "GET /version") == 1, requests
    assert _count(requests, r"GET /v[\d.]+/_ping") == 1, requests
    planned = [r for r in requests if not re.fullmatch(r"GET /v[\d.]+/_ping", r)]
    assert planned.index(next(r for r in planned if re.fullmatch(plan_list, r))) == 3, planned
    # The image store is not asked (`/info`): Docker 20.10's API (1.41) predates the containerd
    # store (image_identity.CONTAINERD_STORE_API), and the containerd store's image inspection
    # carries its target descriptor.
    assert _count(requests, r"GET /v[\d.]+/info") == 0, requests


def test_the_plan_of_an_environment_up_asks_its_engine_in_one_round(up_world, monkeypatch):
    """The ID the environment's container had when the last command on this master saw it is
    kept beside the master (SSHHost.note_container: `up` notes the container it made); the
    plan's first round asks that container's inspection, processes and setup state by it beside
    the list, and takes them when the list gives that ID (observe_engine.view): one round. A
    stale or unknown ID: the listed container's are asked in a second round, as before, with the
    same view. Rounds counted where each goes (a wrapper around _Rounds.ask that calls it)."""
    from envctl import observe_engine
    from envctl.cli_remote import RemoteOptions, single_target
    from envctl.image_identity import RECORDS
    from envctl.paths import cache_dir

    world, tarball, weights = up_world
    manifest = world.write(UP_BODY.format(ref=UP_REF, tarball=tarball, weights=weights))
    assert world.run("up", str(manifest), "--host", "lab1").returncode == 0
    for key, value in world.environ().items():
        monkeypatch.setenv(key, value)
    host = single_target(RemoteOptions(("lab1",), None, None, None))
    container_id = world.lab.docker("lab1", "inspect", "-f", "{{.Id}}", world.container).stdout.strip()
    assert host.container_hint(world.container) == container_id  # noted by the up that made it
    engine = host.engine()
    rounds = []
    original = observe_engine._Rounds.ask

    def ask(self, targets):
        rounds.append([target[0] for target in targets])
        return original(self, targets)

    monkeypatch.setattr(observe_engine._Rounds, "ask", ask)
    views = {}
    for known in (container_id, None, "0" * 64):
        rounds.clear()
        views[known] = observe_engine.view(engine, UP_REF, (), None, world.name, world.container,
                                           cache_dir() / "state" / RECORDS, together=True, known_id=known)
        assert len(rounds) == (1 if known == container_id else 2), (known, rounds)
        assert views[known].container.id == container_id and views[known].markers, views[known]
    assert views[container_id] == views[None] == views["0" * 64]


def test_a_plan_finds_the_wanted_image_under_another_name_in_its_first_round(up_world, monkeypatch):
    """Where the ref names no image (a fresh host; here the image is there under another tag
    only), the IDs the image must have are answered by the plan's first round, asked beside the
    ref (observe_engine.view): no second round, and the image is found by its ID. The first
    round goes on the connection the engine's API version was asked on (engine_socket.keep)."""
    from envctl import engine_socket, observe_engine
    from envctl.cli_remote import RemoteOptions, single_target
    from envctl.image_identity import RECORDS
    from envctl.paths import cache_dir

    world, tarball, _ = up_world
    lab = world.lab
    other = "envctl-it/round-trips-elsewhere:1"
    world.cleanups.append(lambda: lab.docker("lab1", "rmi", "-f", other))
    for key, value in world.environ().items():
        monkeypatch.setenv(key, value)
    host = single_target(RemoteOptions(("lab1",), None, None, None))
    host.ask_api_version()  # as the early opening asks it: its connection is kept for the first round
    engine = host.engine()
    rounds, opened = [], []
    original = observe_engine._Rounds.ask

    def ask(self, targets):
        rounds.append([target[0] for target in targets])
        return original(self, targets)

    class Counted(engine_socket.Pipelined):
        def __init__(self, *args, **kwargs):
            opened.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(observe_engine._Rounds, "ask", ask)
    monkeypatch.setattr(engine_socket, "Pipelined", Counted)

    def viewed(wanted):
        rounds.clear()
        return observe_engine.view(engine, UP_REF, wanted, None, world.name, world.container,
                                   cache_dir() / "state" / RECORDS, together=True)

    absent = viewed(("sha256:" + "0" * 64,))  # a fresh host: nothing there
    assert len(rounds) == 1, rounds
    assert opened == [], opened  # asked on the connection /version was asked on: no channel to open first
    assert absent.image_id is None and absent.pinned_id is None and absent.container is None
    assert lab.docker("lab1", "load", "-i", str(tarball)).returncode == 0  # the docker CLI here reads the file
    image_id = lab.docker("lab1", "image", "inspect", "-f", "{{.Id}}", UP_REF).stdout.strip()
    assert lab.docker("lab1", "tag", UP_REF, other).returncode == 0
    assert lab.docker("lab1", "rmi", UP_REF).returncode == 0  # the ref names nothing now
    found = viewed((image_id,))
    assert len(rounds) == 1, rounds
    assert found.image_id is None and found.pinned_id == image_id, found
