"""envctl on lab servers over SSH: real sshd in network namespaces, each host with its own Docker
engine (tests/sshlab.py). Only the hosts are simulated; ssh, sshd, Docker, HTTP are real."""

from __future__ import annotations

import hashlib
import os
import shutil
import re
import signal
import threading
import time
from pathlib import Path

import docker
import pytest

from servers.http_files import FileServer
from support import IMAGE
from terminal import in_terminal
from testimages import save_image
from world import World

BIG = 48 << 20  # pushed as a blob of its own (resumable), big enough to cut mid-way under a delay
FAR_SEGMENTED = 80 << 20  # over 64 MiB: to a far host, over four connections at once


@pytest.fixture(scope="session")
def image_tarball(tmp_path_factory):
    """A `docker save` of the test image, and its ID."""
    client = docker.from_env()
    path = tmp_path_factory.mktemp("remote-images") / "busybox.tar"
    image_id = save_image(client, None, path)
    return path, image_id


@pytest.fixture(scope="session")
def payload(tmp_path_factory):
    """A large artifact (random bytes) and a small one, as local files."""
    directory = tmp_path_factory.mktemp("payload")
    big = directory / "weights.bin"
    with open(big, "wb") as out:
        out.write(os.urandom(BIG))
    small = directory / "config.json"
    small.write_text('{"hidden_size": 64}\n')
    return big, small


BODY = """\
device: {{kind: cpu}}
image:
  ref: {image}
  tarball: {{source: {tarball}}}
container: {{workdir: /work}}
artifacts:
  weights: {{source: "{big}", target: /models/weights.bin{weights_sha}}}
  config: {{source: {small}, target: /models/config.json, mode: rw}}
setup:
  - name: note the config
    run: mkdir -p /work && cp /models/config.json /work/seen.json
entrypoints:
  check:
    run: sha256sum /models/weights.bin; cat /work/seen.json; echo done > /envctl/outputs.txt
  fail:
    run: echo failing; exit 3
"""


def _manifest(world: World, image_tarball, payload, **changes) -> Path:
    big, small = payload
    values = {"image": IMAGE, "tarball": image_tarball[0], "big": big, "small": small, "weights_sha": "", **changes}
    return world.write(BODY.format(**values))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _remove_image(lab, host: str) -> None:
    lab.docker(host, "rmi", "-f", IMAGE)


def test_up_exec_logs_status_down_on_a_remote_host(world, lab, image_tarball, payload):
    manifest = _manifest(world, image_tarball, payload)
    _remove_image(lab, "lab1")
    up = world.run("up", str(manifest), "--host", "lab1")
    assert up.returncode == 0, up.stderr
    assert "artifact   weights: sent on lab1" in up.stderr and f"image      {IMAGE}: loaded" in up.stderr
    assert world.containers("lab1") == [f"{world.container} running"]
    assert world.containers("lab2") == []  # nothing happened anywhere else
    # The remote cache holds the verified blobs, with this machine's layout.
    blob = world.remote("lab1", f"{world.data_dir()}/cache/blobs/sha256/{_sha(payload[0])}")
    assert blob.is_file() and _sha(blob) == _sha(payload[0])
    assert world.remote("lab1", f"{world.data_dir()}/cache/blobs/sha256/{_sha(image_tarball[0])}").is_file()

    ran = world.run("exec", "check", "--host", "lab1", "--env", world.container)
    assert ran.returncode == 0, ran.stderr
    assert f"{_sha(payload[0])}  /models/weights.bin" in ran.stdout and '"hidden_size": 64' in ran.stdout
    workspace = f"{world.data_dir()}/workspaces/{world.container}"
    assert world.remote("lab1", f"{workspace}/outputs.txt").read_text() == "done\n"
    shell = in_terminal(["shell", "--host", "lab1", "--env", world.container], world.environ(),
                        send=b"echo at=$(pwd) in=$(hostname); exit\r")
    assert b"at=/work in=" in shell  # a shell with a terminal, in the container on lab1
    failed = world.run("exec", "fail", "--host", "lab1", "--env", world.container)
    assert failed.returncode == 3 and "failing" in failed.stdout
    logs = sorted(world.remote("lab1", f"{workspace}/logs").glob("fail-*.log"))
    assert len(logs) == 1 and logs[0].read_text() == "failing\n"  # the log lives on the host
    printed = world.run("logs", world.container, "-e", "fail", "--host", "lab1")
    assert printed.returncode == 0 and printed.stdout == "failing\n", printed.stderr

    again = world.run("up", str(manifest), "--host", "lab1")
    assert again.returncode == 0, again.stderr
    for line in ("artifact   weights: present on lab1", f"image      {IMAGE}: present",
                 f"container  {world.container}: unchanged", "setup      0 step(s) ran, 1 unchanged"):
        assert line in again.stderr

    status = world.run("status", "--host", "lab1", "--json")
    assert status.returncode == 0, status.stderr
    assert [(r["host"], r["name"], r["status"]) for r in __import__("json").loads(status.stdout)
            if r["name"] == world.container] == [("lab1", world.container, "running")]
    down = world.run("down", world.container, "--host", "lab1", "--purge")
    assert down.returncode == 0, down.stderr
    assert world.containers("lab1") == [] and not world.remote("lab1", workspace).exists()


def test_an_unknown_host_key_stops_with_its_fingerprint_and_only_that_key_is_accepted(world, lab):
    lab.forget_host_key("lab2")
    first = world.run("doctor", "--host", "lab2")
    assert first.returncode == 7
    fingerprint = lab.fingerprint("lab2")
    assert f"is not known (offered: {fingerprint})" in first.stderr
    assert f"--accept-host-key {fingerprint}" in first.stderr
    before = lab.known_hosts.read_text()

    wrong = world.run("doctor", "--host", "lab2", "--accept-host-key", "SHA256:" + "A" * 43)
    assert wrong.returncode == 7 and "nothing was recorded" in wrong.stderr
    assert lab.known_hosts.read_text() == before

    accepted = world.run("doctor", "--host", "lab2", "--accept-host-key", fingerprint)
    assert accepted.returncode == 0, accepted.stderr
    assert lab.host_public_key("lab2").split()[1] in lab.known_hosts.read_text()
    assert world.run("doctor", "--host", "lab2").returncode == 0  # recorded: no flag needed any more


def test_a_changed_host_key_always_stops(world, lab):
    assert world.run("status", "--host", "lab2").returncode == 0
    world.close_connections()  # a live master was authenticated before the change
    lab.change_host_key("lab2")
    for extra in ((), ("--accept-host-key", lab.fingerprint("lab2"))):
        result = world.run("status", "--host", "lab2", *extra)
        assert result.returncode == 7
        assert "the host key of lab2 (" in result.stderr and "has CHANGED" in result.stderr
        assert "does not connect" in result.stderr


def test_a_key_the_server_does_not_know_is_refused(world, lab, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(lab.ssh_config.read_text().replace(str(lab.client_key), str(lab.wrong_key)))
    result = world.run("status", "--host", "lab1", env=world.environ(ENVCTL_SSH_CONFIG=str(config)))
    assert result.returncode == 7
    assert "the server refused our key" in result.stderr and "ssh -G lab1" in result.stderr


def test_a_host_behind_a_bastion_is_reached_through_proxyjump(world, lab, image_tarball, payload):
    hidden = lab.hidden[0]
    manifest = _manifest(world, image_tarball, payload)
    up = world.run("up", str(manifest), "--host", hidden)
    assert up.returncode == 0, up.stderr
    assert world.containers(hidden) == [f"{world.container} running"]
    ran = world.run("exec", "fail", "--host", hidden, "--env", world.container)
    assert ran.returncode == 3


@pytest.mark.parametrize("size", [BIG, FAR_SEGMENTED], ids=["one stream", "four connections"])
def test_a_cut_connection_and_a_killed_run_resume_where_they_stopped(world, lab, image_tarball, payload, size, tmp_path):
    """A far host (a delay on its link): files under 64 MiB go as one stream, larger ones over four
    connections at once (remote/segments.py); both resume from what the host has."""
    big = payload[0]
    if size != BIG:
        big = tmp_path / "bigger.bin"
        big.write_bytes(os.urandom(size))
    manifest = _manifest(world, image_tarball, (big, payload[1]))
    blobs = world.remote("lab2", f"{world.data_dir()}/cache/blobs/sha256")
    arrived = lambda: sum(p.stat().st_size for p in blobs.glob(f".{_sha(big)}.*"))  # noqa: E731
    lab.set_delay("lab2", 20)  # slow enough to act in the middle of the transfer

    # 1. The connection is cut mid-transfer: the same run carries on from what arrived.
    cut = threading.Thread(target=_when, args=(lambda: arrived() >= 8 << 20, lambda: lab.drop_connections("lab2")))
    cut.start()
    pushed = world.run("fetch", str(manifest), "--host", "lab2")
    cut.join()
    assert pushed.returncode == 0, pushed.stderr
    resumed = re.search(rf"{big.name} resumed at (\d+) bytes", pushed.stderr)
    assert resumed and 0 < int(resumed.group(1)) < size, pushed.stderr
    assert _sha(blobs / _sha(big)) == _sha(big)

    # 2. envctl itself is killed mid-transfer: the next run resumes from the bytes on the host.
    lab.run_in("lab2", "rm", "-rf", world.data_dir())
    process = world.popen("fetch", str(manifest), "--host", "lab2")
    _when(lambda: blobs.is_dir() and arrived() >= 8 << 20, lambda: os.kill(process.pid, signal.SIGKILL))
    process.wait(timeout=60)
    kept = arrived()
    assert 0 < kept < size
    parts = sorted(p.name for p in blobs.glob(f".{_sha(big)}.part[0-9]"))
    assert parts == ([f".{_sha(big)}.part{i}" for i in range(4)] if size != BIG else []), parts
    again = world.run("fetch", str(manifest), "--host", "lab2")
    assert again.returncode == 0, again.stderr
    resumed = re.search(rf"{big.name} resumed at (\d+) bytes", again.stderr)
    assert resumed and int(resumed.group(1)) >= kept, again.stderr
    assert _sha(blobs / _sha(big)) == _sha(big) and arrived() == 0  # no part or partial file left


def _when(condition, action, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            action()
            return
        time.sleep(0.02)
    raise AssertionError("the transfer never got far enough to be cut")


def test_an_air_gapped_host_gets_pushed_bytes_and_a_networked_one_downloads_from_its_mirror(world, lab, image_tarball,
                                                                                             payload, monkeypatch):
    data = os.urandom(3 << 20)
    # Served on the lab network: lab hosts can reach it; so can this process (it is its own address).
    monkeypatch.setattr(FileServer, "address", lab.gateway)
    with FileServer(files={"weights.bin": data}) as mirror:
        manifest = _manifest(world, image_tarball, payload, big=mirror.url_for("weights.bin"),
                             weights_sha=f", sha256: {hashlib.sha256(data).hexdigest()}")
        world.write_inventory(lab1={"fetch": "remote"}, lab2={"fetch": "push"})
        pushed = world.run("fetch", str(manifest), "--host", "lab2")
        assert pushed.returncode == 0, pushed.stderr
        assert "artifact   weights: sent on lab2" in pushed.stderr
        assert (Path(world.base) / "cache" / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).is_file()

        local_blob = Path(world.base) / "cache" / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
        os.chmod(local_blob, 0o644)
        local_blob.unlink()  # so that a byte through this machine would show
        downloaded = world.run("fetch", str(manifest), "--host", "lab1")
        assert downloaded.returncode == 0, downloaded.stderr
        assert "artifact   weights: downloaded by lab1" in downloaded.stderr
        assert not local_blob.exists()  # the bytes went from the mirror to the host only
        blob = world.remote("lab1", f"{world.data_dir()}/cache/blobs/sha256/{hashlib.sha256(data).hexdigest()}")
        assert blob.read_bytes() == data

    # The mirror is gone: the host cannot download, and says so; nothing half-done is kept as whole.
    lab.run_in("lab1", "rm", "-rf", world.data_dir())
    failed = world.run("fetch", str(manifest), "--host", "lab1")
    assert failed.returncode == 6
    assert "lab1: downloading" in failed.stderr and "failed" in failed.stderr


def test_a_host_that_has_the_image_is_sent_no_tarball(world, lab, image_tarball, payload):
    manifest = _manifest(world, image_tarball, payload)
    loaded = lab.docker("lab3", "load", "-i", str(image_tarball[0]))
    assert loaded.returncode == 0, loaded.stderr
    up = world.run("up", str(manifest), "--host", "lab3")
    assert up.returncode == 0, up.stderr
    assert f"image      {IMAGE}: present" in up.stderr
    tarball_blob = world.remote("lab3", f"{world.data_dir()}/cache/blobs/sha256/{_sha(image_tarball[0])}")
    assert not tarball_blob.exists()


def test_up_on_three_hosts_with_one_failing_finishes_the_others(world, lab, image_tarball, payload):
    manifest = _manifest(world, image_tarball, payload)
    lab.stop("lab3")
    result = world.run("up", str(manifest), "--hosts", "lab1,lab2,lab3")
    assert result.returncode == 7
    lines = result.stderr.splitlines()
    assert re.search(r"^lab1 +ok ", "\n".join(lines), re.M) and re.search(r"^lab2 +ok ", "\n".join(lines), re.M), result.stderr
    assert re.search(r"^lab3 +FAILED .*cannot connect|^lab3 +FAILED .*refused", "\n".join(lines), re.M), result.stderr
    assert "2 of 3 hosts succeeded" in result.stderr
    assert world.containers("lab1") == [f"{world.container} running"]
    assert world.containers("lab2") == [f"{world.container} running"]


MLU_BODY = """\
device: {{kind: mlu, cards: 2, driver: ">=5.10"}}
image:
  ref: {image}
  tarball: {{source: {tarball}}}
entrypoints:
  devices:
    run: ls /dev | grep cambricon | sort; echo "visible=$MLU_VISIBLE_DEVICES cards=$ENVCTL_NUM_CARDS"
"""


def test_a_remote_accelerator_host_is_probed_there(world, lab, image_tarball):
    """Cards, driver and device nodes are read on the remote host (below its own root), not here."""
    import hostsim

    root = lab.host_root("lab2")
    hostsim.mlu_host(root, cards=4, driver="5.10.22")
    world.cleanups.append(lambda: [shutil.rmtree(p) for p in root.iterdir()])
    world.write_inventory(lab2={"root": str(root), "cards": "2-3"})
    manifest = world.write(MLU_BODY.format(image=IMAGE, tarball=image_tarball[0]))
    doctor = world.run("doctor", str(manifest), "--host", "lab2")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "v5.10.22 satisfies >=5.10" in doctor.stdout and f"{root}/usr/bin/cnmon" in doctor.stdout
    planned = world.run("plan", str(manifest), "--host", "lab2")
    assert planned.returncode == 0, planned.stderr
    assert f"--device {root}/dev/cambricon_dev2:/dev/cambricon_dev2" in planned.stdout  # the inventory's cards
    up = world.run("up", str(manifest), "--host", "lab2")
    assert up.returncode == 0, up.stderr
    ran = world.run("exec", "devices", "--host", "lab2", "--env", world.container)
    assert ran.returncode == 0, ran.stderr
    assert "cambricon_dev2\ncambricon_dev3\n" in ran.stdout and "cards=2" in ran.stdout

    both = world.run("doctor", str(manifest), "--hosts", "lab2,lab3")
    assert both.returncode == 5  # lab3 has no MLU
    assert "# lab2\n" in both.stdout and "# lab3\n" in both.stdout and "FAIL" in both.stdout.split("# lab3")[1]
    assert re.search(r"^lab3 +FAILED .*not ready: ", both.stderr, re.M), both.stderr

    # A host without the cards: refused there, with the reason, before anything starts.
    too_old = world.run("up", str(manifest), "--host", "lab3")
    assert too_old.returncode == 5
    assert "cards" in too_old.stderr or "card" in too_old.stderr, too_old.stderr
