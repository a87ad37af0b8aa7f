"""The quick path of `up NAME --host H` (envctl/quick_up.py, envctl/quick_up_remote.py) on the SSH
lab: a full `up` whose plan was a no-op on the host records what it ran there and what it
printed; the next identical `up` answers from that record, printing exactly what the full path
prints (ENVCTL_NO_QUICK=1), and leaves to the full path every world the record does not hold: the
container stopped, the artifact's cache entry on the host removed or changed, anything the host's
probe round reads changed, the master connection or its forward gone, the manifest or the
artifact's local source touched, several hosts named.

Which path answered is read from `python -X importtime`'s report (quick_answers.py). Never
timings. Each test first sees the quick path answer, so that each fails without it.

The record each test relies on is written by an `up` as typed (the full path when no record
answers)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys

import docker
import pytest
import yaml

from envctl.remote import live_master
from quick_answers import Said, envctl, forwarded_socket as _forward, master_socket as _master
from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
artifacts:
  config: {{source: "{config}", target: /models/config.json}}
# {mark}
"""
CONFIG = b'{"hidden_size": 64}\n'


def answered_quickly(world, *args) -> Said:
    """The quick path's answer to `args`, checked equal to the full path's: the full path's
    answer (ENVCTL_NO_QUICK=1), then the command as typed (the full path again, which records the
    no-op), then as typed once more: the quick path."""
    full = envctl(world, *args, quick=False)
    recorded = envctl(world, *args)
    quick = envctl(world, *args)
    assert quick.quick, (quick, recorded)
    assert quick.output == recorded.output == full.output and full.code == 0, (quick, recorded, full)
    return quick


def left_to_the_full_path(world, *args) -> Said:
    """The command as typed, answered by the full path."""
    said = envctl(world, *args)
    assert not said.quick, said
    return said


def quick_again(world, *args, expected: Said) -> None:
    """The quick path answers again once a full `up` recorded a no-op (the first `up` after a
    change may act, which is no no-op: at most two full ups)."""
    said = [envctl(world, *args) for _ in range(3)]
    assert said[-1].quick and all(s.output == expected.output for s in said[1:]), said


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("quick-up-remote") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


@pytest.fixture
def config(world):
    """The artifact's local source: a small file, pushed to the host's cache."""
    path = world.base / "config.json"
    path.write_bytes(CONFIG)
    return path


def manifest(world, tarball, config, mark: str = "a") -> str:
    return str(world.write(BODY.format(image=IMAGE, tarball=tarball, config=config, mark=mark)))


def brought_up(world, tarball, config, *hosts: str) -> tuple[str, Said]:
    """The environment up on lab1 (the full path); the manifest and the quick path's answer to
    `up MANIFEST --host lab1` (or `hosts`, the words after the manifest)."""
    path = manifest(world, tarball, config)
    made = envctl(world, "up", path, "--host", "lab1")
    assert made.code == 0 and f"container  {world.container}: created" in made.stderr, made
    return path, answered_quickly(world, "up", path, *(hosts or ("--host", "lab1")))


def placed_entry(world) -> str:
    """Where the artifact's cache entry lies on lab1 (the record beside it: ENTRY.json)."""
    found = glob.glob(str(world.remote("lab1", f"{world.data_dir()}/cache/artifacts")) + "/*/*/config.json")
    assert len(found) == 1, found
    return found[0]


def test_a_no_op_up_is_answered_as_the_full_path_answered_it(world, lab, tarball, config):
    path, said = brought_up(world, tarball, config)
    container = world.container
    assert said.stdout == "" and said.stderr == (
        "artifact   config: present on lab1\n"
        f"image      {IMAGE}: present\n"
        f"container  {container}: unchanged\n"
        f"ready      {container}: envctl exec ENTRYPOINT --env {container} --host lab1 (entrypoints: none)\n")
    assert not {"typer", "docker", "pydantic", "yaml"} & said.modules
    for option in ("-H", "--hosts"):  # each form its own record, the same answer
        assert answered_quickly(world, "up", path, option, "lab1").output == said.output
    for _ in range(2):  # another option: never the quick path's, and no record of its own
        dry = left_to_the_full_path(world, "up", path, "--host", "lab1", "--dry-run")
    assert dry.output == envctl(world, "up", path, "--host", "lab1", "--dry-run", quick=False).output
    assert dry.code == 0 and f"plan: {world.name} on lab1" in dry.stdout
    again = envctl(world, "up", path, "--host", "lab1")  # the dry run left the plain form's record alone
    assert again.quick and again.output == said.output


def test_a_stopped_container_is_started_by_the_full_path(world, lab, tarball, config):
    path, said = brought_up(world, tarball, config)
    container = world.container
    stopped = lab.docker("lab1", "stop", "-t", "0", container)
    assert stopped.returncode == 0, stopped.stderr
    started = left_to_the_full_path(world, "up", path, "--host", "lab1")
    assert started.output == (0, "", said.stderr.replace(f"container  {container}: unchanged",
                                                         f"container  {container}: started"))
    assert world.containers("lab1") == [f"{container} running"]
    # That `up` acted (no record); the next is a no-op, recorded; the one after is answered.
    recorded = left_to_the_full_path(world, "up", path, "--host", "lab1")
    assert recorded.output == said.output
    again = envctl(world, "up", path, "--host", "lab1")
    assert again.quick and again.output == said.output


@pytest.mark.parametrize("change", ["removed", "grown"])
def test_the_artifacts_cache_entry_on_the_host_changed_is_put_back_by_the_full_path(world, lab, tarball, config,
                                                                                    change):
    path, said = brought_up(world, tarball, config)
    entry = placed_entry(world)
    if change == "removed":
        os.unlink(entry)
        os.unlink(entry + ".json")
    else:  # one byte more: the sizes the host's cache record is checked against differ
        os.chmod(entry, 0o644)
        with open(entry, "ab") as out:
            out.write(b"x")
    mended = left_to_the_full_path(world, "up", path, "--host", "lab1")
    assert mended.code == 0 and "artifact   config: sent on lab1\n" in mended.stderr, mended
    with open(placed_entry(world), "rb") as placed:
        assert placed.read() == CONFIG
    quick_again(world, "up", path, "--host", "lab1", expected=said)


@pytest.mark.parametrize("change", ["workspace removed", "cache record rewritten", "device node added"])
def test_what_the_hosts_probe_round_read_changed_is_left_to_the_full_path(world, lab, tarball, config, change):
    """The replayed probe round (and the cache record's read) prints something else: the full
    path answers, here the same as before (the change does not alter the plan)."""
    root = f"{world.data_dir()}/hostroot"  # where lab1's probes look (the inventory's root)
    if change == "device node added":
        world.write_inventory(**{h: {"root": root} if h == "lab1" else {} for h in lab.names})
        os.makedirs(world.remote("lab1", f"{root}/dev"))
    path, said = brought_up(world, tarball, config)
    if change == "workspace removed":
        workspace = world.remote("lab1", f"{world.data_dir()}/workspaces/{world.container}")
        assert workspace.is_dir()
        shutil.rmtree(workspace)
    elif change == "cache record rewritten":  # the same record to a JSON reader, other bytes
        with open(placed_entry(world) + ".json", "a") as record:
            record.write(" ")
    else:
        os.mknod(world.remote("lab1", f"{root}/dev/davinci0"), stat.S_IFCHR | 0o600, os.makedev(1, 3))
    answer = left_to_the_full_path(world, "up", path, "--host", "lab1")
    if change == "workspace removed":  # made again, and the container restarted to mount it anew
        assert f"container  {world.container}: restarted" in answer.stderr, answer
    else:
        assert answer.output == said.output
    assert envctl(world, "up", path, "--host", "lab1", quick=False).output == said.output
    quick_again(world, "up", path, "--host", "lab1", expected=said)


@pytest.mark.parametrize("gone", ["master", "forward"])
def test_a_master_or_forward_gone_is_left_to_the_full_path(world, lab, tarball, config, gone):
    path, said = brought_up(world, tarball, config)
    master = _master(world)
    if gone == "master":
        ended = subprocess.run(["ssh", "-S", master, "-O", "exit", "lab1"], capture_output=True, text=True, timeout=30)
        assert ended.returncode == 0, ended.stderr
        assert not live_master.answers(master)
    else:  # the file of a socket no one listens on any more (a forward of an ended master)
        forward = _forward(world)
        os.unlink(forward)
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(forward)
    answer = left_to_the_full_path(world, "up", path, "--host", "lab1")
    assert answer.output == said.output
    assert live_master.answers(master) and live_master.answers(_forward(world))  # opened and forwarded again
    quick_again(world, "up", path, "--host", "lab1", expected=said)


def test_an_edited_manifest_or_local_source_is_left_to_the_full_path(world, lab, tarball, config):
    path, said = brought_up(world, tarball, config)
    before = open(path).read()
    edited = manifest(world, tarball, config, mark="b")  # one byte, in a comment: the same plan
    assert edited == path and len(open(path).read()) == len(before) and open(path).read() != before
    answer = left_to_the_full_path(world, "up", path, "--host", "lab1")
    assert answer.output == said.output
    quick_again(world, "up", path, "--host", "lab1", expected=said)
    config.write_bytes(CONFIG.replace(b"64", b"65"))  # the artifact's local source, edited: same size
    answer = left_to_the_full_path(world, "up", path, "--host", "lab1")
    # copied here again, pushed, and the running container's mount of the old file made anew
    assert answer.code == 0 and f"container  {world.container}: restarted" in answer.stderr, answer
    with open(placed_entry(world), "rb") as there:
        assert there.read() == config.read_bytes()
    quick_again(world, "up", path, "--host", "lab1", expected=envctl(world, "up", path, "--host", "lab1", quick=False))


def started_by_the_full_path_on_lab2(world, lab, path: str) -> None:
    """The container stopped on lab2: `up --host pair` takes the full path and starts it."""
    stopped = lab.docker("lab2", "stop", "-t", "0", world.container)
    assert stopped.returncode == 0, stopped.stderr
    answer = left_to_the_full_path(world, "up", path, "--host", "pair")
    assert answer.code == 0 and f"lab2  container  {world.container}: started\n" in answer.stderr, answer
    assert world.containers("lab2") == [f"{world.container} running"]


def test_several_hosts_are_never_answered_from_a_record(world, lab, tarball, config):
    """A group, a comma list or a range names two hosts: the record is of one host's no-op
    (its engine is what the quick path asks), so none is answered quickly, and a container
    stopped on the second host is started. Both hosts 50 ms away: the hosts' work overlaps, as
    on real servers, and each host's note of its plan comes while the other's is being taken."""
    inventory = yaml.safe_load(world.inventory.read_text())
    inventory["groups"] = {"pair": ["lab1", "lab2"], "solo": ["lab1"]}
    world.inventory.write_text(yaml.safe_dump(inventory))
    path, said = brought_up(world, tarball, config)
    assert answered_quickly(world, "up", path, "--host", "solo").output == said.output  # a group of one host
    lab.set_delay("lab1", 50)
    lab.set_delay("lab2", 50)
    for hosts in ("pair", "lab1,lab2", "lab[1-2]"):
        for _ in range(3):
            answer = left_to_the_full_path(world, "up", path, "--host", hosts)
            assert answer.code == 0 and "2 of 2 hosts succeeded" in answer.stderr, answer
    started_by_the_full_path_on_lab2(world, lab, path)


def test_a_record_holding_another_hosts_commands_answers_for_no_host(world, lab, tarball, config):
    """The record `up --host pair` may write (quick_up_record.Recording.note: when the two
    hosts' notes of their plans overlap, the first host's facts are kept though a second host
    was noted): lab1's destination, master and engine, with lab2's commands among lab1's, and the
    two hosts' output. Written here as that recording writes it, deterministically: the quick
    path would replay lab2's commands through lab2's master (they answer the same) and ask
    lab1's engine alone, and so answer "unchanged" for a container stopped on lab2."""
    inventory = yaml.safe_load(world.inventory.read_text())
    inventory["groups"] = {"pair": ["lab1", "lab2"]}
    world.inventory.write_text(yaml.safe_dump(inventory))
    path, said = brought_up(world, tarball, config)
    records = glob.glob(str(world.base / "cache/state/quick-up/*.json"))
    assert len(records) == 1, records
    with open(records[0]) as kept:
        record = json.load(kept)
    for _ in range(2):
        both = envctl(world, "up", path, "--host", "pair")
        assert both.code == 0 and not both.quick, both
    lab1_master, lab2_master = _master(world, "lab1"), _master(world, "lab2")
    assert live_master.answers(lab2_master)
    for command in list(record["remote"]["commands"]):
        argv = [f"ControlPath={lab2_master}" if word == f"ControlPath={lab1_master}" else word for word in command["argv"]]
        argv[argv.index("--") - 1] = "lab2"
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        record["remote"]["commands"].append({
            "argv": argv, "returncode": done.returncode, "stdout": hashlib.sha256(done.stdout).hexdigest(),
            "stderr": None if command["stderr"] is None else hashlib.sha256(done.stderr).hexdigest()})
    record["stdout"], record["stderr"] = both.stdout, both.stderr
    key = subprocess.run([sys.executable, "-c", "import os, sys; from envctl.quick_up import record_key; "
                          "print(record_key(sys.argv[1:], os.environ))", "up", path, "--host", "pair"],
                         capture_output=True, text=True, env=world.environ(), check=True).stdout.strip()
    with open(os.path.join(os.path.dirname(records[0]), f"{key}.json"), "w") as out:
        json.dump(record, out)
    started_by_the_full_path_on_lab2(world, lab, path)


def test_a_replayed_command_goes_through_the_live_master_or_nowhere(world, lab, tarball, config):
    """The quick path replays a recorded command with ProxyCommand=exec false given first
    (quick_up_remote.NO_NEW_CONNECTION): through the live master it answers as recorded; with the
    master gone (its ControlPersist ran out between the check and the replay) ssh, which keeps the
    first value of an option, cannot connect by itself with the record's route: exit 255, no
    master opened. Without the option, the same argv opens a connection and a master."""
    from envctl.quick_up_remote import NO_NEW_CONNECTION

    path, _said = brought_up(world, tarball, config)
    [record] = [json.load(open(found)) for found in glob.glob(str(world.base / "cache/state/quick-up/*.json"))]
    argv = record["remote"]["commands"][0]["argv"]
    guarded = [argv[0], "-o", NO_NEW_CONNECTION, *argv[1:]]
    through = subprocess.run(guarded, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert through.returncode == record["remote"]["commands"][0]["returncode"]
    assert hashlib.sha256(through.stdout).hexdigest() == record["remote"]["commands"][0]["stdout"]
    master = _master(world)
    ended = subprocess.run(["ssh", "-S", master, "-O", "exit", "lab1"], capture_output=True, text=True, timeout=30)
    assert ended.returncode == 0, ended.stderr
    cut_off = subprocess.run(guarded, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert cut_off.returncode == 255 and not live_master.answers(master), cut_off
    opened = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert opened.returncode == 0 and live_master.answers(master), opened  # the guard is what stopped it


def test_a_record_others_could_write_is_not_read(world, lab, tarball, config):
    """The record holds the ssh commands the quick path runs: written 0600, and one that a group
    or others may write (a lab's shared ENVCTL_CACHE) is never read (quick_up.read_record)."""
    path, said = brought_up(world, tarball, config)
    [record] = glob.glob(str(world.base / "cache/state/quick-up/*.json"))
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    os.chmod(record, 0o664)
    assert left_to_the_full_path(world, "up", path, "--host", "lab1").output == said.output
    quick_again(world, "up", path, "--host", "lab1", expected=said)
