"""The quick path of `status --host NAME` (envctl/quick_status_remote.py) on the SSH lab: through
the master connection and forwarded engine socket an earlier envctl left, it prints exactly
what the full path prints (ENVCTL_NO_QUICK=1), and leaves to the full path every world it does
not know: work running, the master gone, the forward stale, the facts note garbage or older
than the master, another ssh config or inventory, several hosts.

Which path answered is read from `python -X importtime`'s report: the full path imports typer's
app (envctl.cli_app), the quick path does not. Never timings. Each test first sees the quick path answer, so that
each fails without it."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket

import docker
import pytest
import yaml

from quick_answers import Said, envctl, forwarded_socket as _forward, master_socket as _master
from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
"""


def both(world, *args, **extra) -> tuple[Said, Said]:
    """(quick, full): the command as typed, then with ENVCTL_NO_QUICK=1 (which finds the world
    the first one left: the full path mends what the quick path refused)."""
    return envctl(world, *args, **extra), envctl(world, *args, quick=False, **extra)


def answered_quickly(world, *args, **extra) -> Said:
    """The quick path's answer, checked equal to the full path's."""
    full = envctl(world, *args, quick=False, **extra)  # also leaves the master, its note and the forward
    quick = envctl(world, *args, **extra)
    assert quick.quick, quick.stderr
    assert quick.output == full.output and full.code == 0, (quick, full)
    return quick


def left_to_the_full_path(world, *args, timed: bool = False, **extra) -> Said:
    """The full path's answer to the command as typed. `timed`: its stderr holds the seconds of
    each host (several hosts' table), compared apart from them."""
    quick, full = both(world, *args, **extra)
    assert not quick.quick
    # A run's start is told from its elapsed seconds: two reads a second apart may differ by one.
    said, again = ([re.sub(r"since [0-9-]+ [0-9:]+ UTC", "since T", text) for text in answer.output[1:]]
                   for answer in (quick, full))
    if timed:
        said, again = said[:1], again[:1]
    assert (quick.code, *said) == (full.code, *again), (quick, full)
    return quick


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("quick-status-remote") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def up(world, lab, tarball, name: str | None = None) -> str:
    """An environment up on lab1 (full path); its container's name."""
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    if name is not None:
        manifest = world.base / f"{name}.yaml"
        manifest.write_text(f"name: {name}\ndescription: a second environment\n"
                            + BODY.format(image=IMAGE, tarball=tarball))
        world.cleanups.append(lambda: lab.docker("lab1", "rm", "-f", f"envctl-{name}"))
    done = world.run("up", str(manifest), "--host", "lab1", env=world.environ(ENVCTL_NO_QUICK="1"))
    assert done.returncode == 0, done.stderr
    return f"envctl-{name or world.name}"


def test_no_environment_one_and_several_as_the_full_path_prints_them(world, lab, tarball):
    said = answered_quickly(world, "status", "--host", "lab1")
    assert said.stdout == "no environments\n"
    first = up(world, lab, tarball)
    said = answered_quickly(world, "status", "--host", "lab1")
    assert said.stdout.startswith(f"lab1         {first} ") and said.stdout.count("\n") == 1
    second = up(world, lab, tarball, name=f"{world.name}-b")
    assert lab.docker("lab1", "stop", "-t", "0", second).returncode == 0  # one not running: no docker top for it
    said = answered_quickly(world, "status", "-H", "lab1")
    assert [line.split()[:3] for line in said.stdout.splitlines()] == [["lab1", first, "running"],
                                                                         ["lab1", second, "exited"]]
    answered_quickly(world, "status", "--hosts=lab1")
    answered_quickly(world, "status", "--host", "lab1", "--ssh-config", str(lab.ssh_config),
                     "--inventory", str(world.inventory))


def test_labels_are_written_as_the_full_paths_typer_echo_writes_them(world, lab, tarball):
    """Label text is the engine's: ANSI escapes (typer.echo strips them off a terminal) and
    characters an ASCII stdout cannot hold (typer.echo writes UTF-8 there) as the full path
    writes them; text stdout's encoding cannot hold at all is left to the full path."""
    up(world, lab, tarball)
    odd = f"{world.container}-odd"
    world.cleanups.append(lambda: lab.docker("lab1", "rm", "-f", odd, f"{odd}-euro"))
    made = lab.docker("lab1", "create", "--name", odd, "-l", "io.envctl.manifest=\x1b[31mred\x1b[0m",
                      "-l", "io.envctl.user=jürgen", IMAGE, "true")
    assert made.returncode == 0, made.stderr
    for encoding in ("utf-8", "ascii"):
        said = answered_quickly(world, "status", "--host", "lab1", PYTHONIOENCODING=encoding)
        assert f"{odd} " in said.stdout and " red  (" in said.stdout and "by jürgen" in said.stdout, said.stdout
    made = lab.docker("lab1", "create", "--name", f"{odd}-euro", "-l", "io.envctl.manifest=€", IMAGE, "true")
    assert made.returncode == 0, made.stderr
    said = left_to_the_full_path(world, "status", "--host", "lab1", PYTHONIOENCODING="latin-1")
    assert "Traceback" not in said.stderr


def test_work_running_is_described_by_the_full_path(world, lab, tarball):
    container = up(world, lab, tarball)
    answered_quickly(world, "status", "--host", "lab1")
    started = lab.docker("lab1", "exec", "-d", container, "sleep", "600")  # a `docker exec`: work
    assert started.returncode == 0, started.stderr
    said = left_to_the_full_path(world, "status", "--host", "lab1")
    assert "running docker exec" in said.stdout
    # In the background, no exec left listed: the keep-alive process is not alone any more.
    assert lab.docker("lab1", "restart", "-t", "0", container).returncode == 0
    answered_quickly(world, "status", "--host", "lab1")
    spawned = lab.docker("lab1", "exec", container, "sh", "-c", "sleep 600 >/dev/null 2>&1 &")
    assert spawned.returncode == 0, spawned.stderr
    said = left_to_the_full_path(world, "status", "--host", "lab1")
    assert "running" in said.stdout.splitlines()[-1]


def test_a_master_gone_is_left_to_the_full_path(world, lab, tarball):
    up(world, lab, tarball)
    answered_quickly(world, "status", "--host", "lab1")
    world.close_connections()
    left_to_the_full_path(world, "status", "--host", "lab1")
    assert envctl(world, "status", "--host", "lab1").quick  # the full path opened and forwarded again


def test_a_stale_forward_is_left_to_the_full_path(world, lab, tarball):
    up(world, lab, tarball)
    answered_quickly(world, "status", "--host", "lab1")
    forward = _forward(world)
    os.unlink(forward)  # the file of a socket no one listens on any more (a forward of an ended master)
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(forward)
    left_to_the_full_path(world, "status", "--host", "lab1")
    assert envctl(world, "status", "--host", "lab1").quick


@pytest.mark.parametrize("note", ["garbage", "older", "no engine", "tcp engine", "gone"])
def test_a_facts_note_not_of_this_master_is_left_to_the_full_path(world, lab, tarball, note):
    up(world, lab, tarball)
    answered_quickly(world, "status", "--host", "lab1")
    facts = _master(world) + ".facts"
    if note == "garbage":
        with open(facts, "w") as out:
            out.write("{not json")
    elif note == "older":  # kept under an earlier master
        os.utime(facts, ns=(1, 1))
    elif note == "no engine":
        with open(facts, "w") as out:
            out.write('{"home": "/root"}')
    elif note == "tcp engine":
        with open(facts, "w") as out:
            out.write('{"home": "/root", "docker_host": "tcp://127.0.0.1:2375"}')
    else:
        os.unlink(facts)
    said = left_to_the_full_path(world, "status", "--host", "lab1")
    if note == "tcp engine":  # the full path takes the note's engine, and refuses it
        assert said.code != 0 and "tcp://127.0.0.1:2375" in said.stderr
    else:
        assert envctl(world, "status", "--host", "lab1").quick  # the full path read the facts again


def test_a_facts_note_of_another_shape_is_read_by_both_paths_alike(world, lab, tarball):
    """The note's records and dirs are hints (envctl/remote/target.py): another envctl's shape of
    them is none, on the full path too (it failed on them: an internal error where the quick
    path answered)."""
    up(world, lab, tarball)
    answered_quickly(world, "status", "--host", "lab1")
    facts = _master(world) + ".facts"
    with open(facts) as kept:
        note = json.load(kept)
    with open(facts, "w") as out:
        json.dump({**note, "records": 5, "dirs": {"/root": 1}}, out)
    answered_quickly(world, "status", "--host", "lab1")


def test_another_ssh_config_has_its_own_master(world, lab, tarball):
    up(world, lab, tarball)
    answered_quickly(world, "status", "--host", "lab1")
    other = world.base / "ssh_config"
    shutil.copyfile(lab.ssh_config, other)
    left_to_the_full_path(world, "status", "--host", "lab1", ENVCTL_SSH_CONFIG=str(other))
    left_to_the_full_path(world, "status", "--host", "lab1", "--ssh-config", str(world.base / "elsewhere"))
    answered_quickly(world, "status", "--host", "lab1", "--ssh-config", str(other))  # its master, now up


def test_the_inventory_in_effect_chooses_the_destination(world, lab, tarball):
    up(world, lab, tarball)
    said = answered_quickly(world, "status", "--host", "lab1")
    assert said.stdout.startswith("lab1 ")
    again = envctl(world, "status", "--host", "lab1")
    assert again == said and not {"yaml", "pydantic", "subprocess"} & again.modules  # the inventory's reading kept
    world.write_inventory(lab1={"ssh": "lab2"})  # the same file, lab1 elsewhere now
    elsewhere = left_to_the_full_path(world, "status", "--host", "lab1")  # no master to lab2 was up
    assert elsewhere.stdout != said.stdout
    assert answered_quickly(world, "status", "--host", "lab1").stdout == elsewhere.stdout
    other = world.base / "other.yaml"
    other.write_text(yaml.safe_dump({"hosts": {"lab1": {}}}))
    assert answered_quickly(world, "status", "--host", "lab1", ENVCTL_INVENTORY=str(other)).stdout == said.stdout
    renamed = world.base / "renamed.yaml"
    renamed.write_text(yaml.safe_dump({"hosts": {"box": {"ssh": "lab1"}}}))
    boxed = answered_quickly(world, "status", "--host", "box", "--inventory", str(renamed))
    assert boxed.stdout == said.stdout.replace("lab1", "box ", 1)
    broken = world.base / "broken.yaml"
    broken.write_text("hosts: {lab1: {fetch: sometimes}}\n")
    refused = left_to_the_full_path(world, "status", "--host", "lab1", "--inventory", str(broken))
    assert refused.code != 0 and "sometimes" in refused.stderr


def test_several_hosts_and_other_options_are_left_to_the_full_path(world, lab, tarball):
    up(world, lab, tarball)
    answered_quickly(world, "status", "--host", "lab1")
    answered_quickly(world, "status", "--host", "lab2")
    left_to_the_full_path(world, "status", "--host", "lab1,lab2", timed=True)
    left_to_the_full_path(world, "status", "--host", "lab1", "--host", "lab2", timed=True)
    left_to_the_full_path(world, "status", "--host", "lab1", "--json")
    left_to_the_full_path(world, "status", "--host", "lab1", "--accept-host-key", "SHA256:x")
