"""Who holds which card on lab servers over SSH (tests/sshlab.py: real sshd, each host its own
Docker engine): simulated 8-NPU hosts under each host's root with the npu-smi stand-in printing
usage and process tables, an envctl environment on one, a foreign `docker run --device`
container on the other. Cards, holders and the vendor tool are read on each host, not here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import docker
import pytest

import hostsim
from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: npu, cards: {cards}}}
image:
  ref: {image}
  tarball: {{source: {tarball}}}
"""


@pytest.fixture(scope="session")
def saved_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("cards-image") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def test_cards_over_ssh_name_each_hosts_holders(world, lab, saved_image):
    roots = {}
    for host in ("lab2", "lab3"):
        roots[host] = lab.host_root(host)
        hostsim.npu_host(roots[host], cards=8, used={5: 12000}, processes=[(5, 9001, "python3", 12000)],
                         health={2: "Critical"} if host == "lab3" else None)
        world.cleanups.append(lambda root=roots[host]: [shutil.rmtree(p) for p in root.iterdir()])
    world.write_inventory(lab2={"root": str(roots["lab2"])}, lab3={"root": str(roots["lab3"])})

    foreign = f"{world.name}-vendor"
    assert lab.docker("lab3", "load", "-i", str(saved_image)).returncode == 0
    started = lab.docker("lab3", "run", "-d", "--name", foreign, "--device", f"{roots['lab3']}/dev/davinci0",
                         "--device", f"{roots['lab3']}/dev/davinci1", IMAGE, "sleep", "600")
    assert started.returncode == 0, started.stderr
    world.cleanups.append(lambda: lab.docker("lab3", "rm", "-f", foreign))

    manifest = world.write(BODY.format(cards=2, image=IMAGE, tarball=saved_image))
    up = world.run("up", str(manifest), "--host", "lab2", env=world.environ(USER="carol", LOGNAME="carol"))
    assert up.returncode == 0, up.stderr

    shown = world.run("cards", "--hosts", "lab2,lab3", "--json")
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    lab2 = {c["index"]: c for c in found["lab2"]["families"][0]["cards"]}
    lab3 = {c["index"]: c for c in found["lab3"]["families"][0]["cards"]}
    assert [(h["container"], h["environment"], h["user"]) for h in lab2[0]["holders"]] == [(world.container, world.name, "carol")]
    assert lab2[1]["free"] is False and lab2[2]["free"] is True
    assert [h["container"] for h in lab3[0]["holders"]] == [foreign] and lab3[0]["holders"][0]["environment"] is None
    assert lab3[2]["free"] is True and (lab3[2]["health"], lab3[2]["healthy"]) == ("Critical", False)
    assert lab2[2]["healthy"] is True
    for card in (lab2[5], lab3[5]):  # the npu-smi stand-in's process table, read on each host
        assert card["processes"] == [{"pid": 9001, "name": "python3", "memory": 12000, "pid_in_container": None}]
        assert card["free"] is False and card["memory_used"] == 12000 and card["memory_total"] == 32768

    text = world.run("cards", "--hosts", "lab2,lab3")
    assert f"card 0: {world.container} (environment {world.name}, user carol, since " in text.stdout
    assert f"card 0: {foreign} (not envctl's, since " in text.stdout
    assert "card 5: process 9001 python3, 12000 MB" in text.stdout

    # The same holders and health decide a plan there: a count goes around them and around the card
    # npu-smi marks Critical on that host; ring 0-3 keeps one free card (3), so both come from ring
    # 4-7, where card 5 runs a process. Explicit cards are refused naming the holder.
    planned = world.run("plan", str(manifest), "--host", "lab3")
    assert planned.returncode == 0, planned.stderr
    assert "npu cards 4,6" in planned.stdout and "inside HCCS ring 4-7" in planned.stdout, planned.stdout
    assert f"cards 0,1 by {foreign} (not envctl's" in planned.stdout
    assert "passed over as unhealthy: card 2 Critical (npu-smi's Health)" in planned.stdout
    refused = world.run("plan", str(manifest), "--host", "lab3", "--cards", "1")
    assert refused.returncode == 5
    assert f"Ascend NPU card 1 by {foreign} (not envctl's, since " in refused.stdout


def test_concurrent_ups_from_two_machines_get_disjoint_cards(world, lab, saved_image, tmp_path):
    """Two ups at once on one lab host from two "machines" (each its own cache and so its own local
    locks): only the lock taken on the host itself keeps them from choosing the same cards."""
    root = lab.host_root("lab2")
    hostsim.npu_host(root, cards=8)
    world.cleanups.append(lambda: [shutil.rmtree(p) for p in root.iterdir()])
    world.write_inventory(lab2={"root": str(root)})
    # The image is there before: two ups loading one image at once is another matter.
    assert lab.docker("lab2", "load", "-i", str(saved_image)).returncode == 0
    names = [f"{world.name}-a", f"{world.name}-b"]
    processes = []
    for name in names:
        manifest = tmp_path / f"{name}.yaml"
        manifest.write_text(f"name: {name}\ndescription: a shared host\n" + BODY.format(cards=2, image=IMAGE,
                                                                                      tarball=saved_image))
        world.cleanups.append(lambda name=name: lab.docker("lab2", "rm", "-f", f"envctl-{name}"))
        machine = tmp_path / f"machine-{name}"
        (machine / "home").mkdir(parents=True)
        env = world.environ(ENVCTL_CACHE=str(machine / "cache"), HOME=str(machine / "home"))
        processes.append(subprocess.Popen([sys.executable, "-m", "envctl", "up", str(manifest), "--host", "lab2"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    taken = []
    for name in names:
        inspected = json.loads(lab.docker("lab2", "inspect", f"envctl-{name}").stdout)[0]
        taken.append(sorted(d["PathOnHost"] for d in inspected["HostConfig"]["Devices"] if "/davinci" in d["PathOnHost"]
                            and d["PathOnHost"][-1].isdigit()))
    assert all(len(t) == 2 for t in taken) and not set(taken[0]) & set(taken[1]), taken
