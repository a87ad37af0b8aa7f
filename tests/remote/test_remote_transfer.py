"""Pushing files to lab hosts (envctl/remote/transfer.py, segments.py) against a real sshd: the
host's sha256 taken as the bytes arrive or after they are in, a partial copy with wrong bytes
never taken for a whole one, and a far host's large file over four connections of its own, each
holding the host key to known_hosts. Resuming after a cut connection or a killed envctl is in
test_remote_up.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

import pytest

from envctl.errors import FetchError
from envctl.remote.ssh import RemoteError, SSHConnection, SSHSettings
from envctl.remote.segments import push_segmented
from envctl.remote.transfer import BULK, push_file

REMOTE = "/root/envctl-transfer/blob"
PARTIAL = "/root/envctl-transfer/.blob.partial"


@pytest.fixture
def connect(lab):
    """connect(host): an SSHConnection to a lab host with a master of its own, closed after."""
    control = tempfile.mkdtemp(prefix="ect-")  # a short path: unix sockets allow ~100 bytes
    made = []

    def connect(host: str) -> SSHConnection:
        made.append(SSHConnection(host, SSHSettings(config=str(lab.ssh_config), control_dir=control)))
        return made[-1]

    yield connect
    for connection in made:
        connection.close()
        lab.run_in(connection.destination, "rm", "-rf", os.path.dirname(REMOTE))
    shutil.rmtree(control, ignore_errors=True)


def _file(tmp_path, size: int):
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("early", [True, False], ids=["hashed as it arrives", "hashed after"])
def test_a_push_resumes_from_the_hosts_bytes_and_checks_them_all(lab, connect, tmp_path, early):
    # Blocks of 4 MiB and a tail: the hash as it arrives reads whole blocks behind the writer.
    local, sha = _file(tmp_path, (20 << 20) + 123)
    connection = connect("lab1")
    kept = (5 << 20) + 7
    lab.run_in("lab1", "mkdir", "-p", os.path.dirname(REMOTE))
    lab.path("lab1", PARTIAL).write_bytes(local.read_bytes()[:kept])

    assert push_file(connection, local, REMOTE, sha, early_hash=early) == f"resumed at {kept} bytes"
    assert hashlib.sha256(lab.path("lab1", REMOTE).read_bytes()).hexdigest() == sha
    assert sorted(p.name for p in lab.path("lab1", os.path.dirname(REMOTE)).iterdir()) == ["blob"]  # nothing else left
    assert push_file(connection, local, REMOTE, sha, early_hash=early) == "present"


@pytest.mark.parametrize("early", [True, False], ids=["hashed as it arrives", "hashed after"])
def test_wrong_bytes_already_on_the_host_are_found_and_removed(lab, connect, tmp_path, early):
    """The bytes the host kept from an earlier run are hashed too, not only the ones sent now."""
    local, sha = _file(tmp_path, (9 << 20) + 5)
    connection = connect("lab1")
    lab.run_in("lab1", "mkdir", "-p", os.path.dirname(REMOTE))
    lab.path("lab1", PARTIAL).write_bytes(os.urandom(3 << 20))  # the right size so far, other bytes

    with pytest.raises(FetchError, match=f"arrived with sha256 [0-9a-f]{{64}}, expected {sha}"):
        push_file(connection, local, REMOTE, sha, early_hash=early)
    assert list(lab.path("lab1", os.path.dirname(REMOTE)).iterdir()) == []  # neither the blob nor the partial
    assert push_file(connection, local, REMOTE, sha, early_hash=early) == "sent"  # then from the first byte
    assert hashlib.sha256(lab.path("lab1", REMOTE).read_bytes()).hexdigest() == sha


def test_a_far_hosts_large_file_goes_over_four_connections_of_its_own(lab, connect, tmp_path, monkeypatch):
    """Behind a bastion, so that each of the four connections takes the jump as the master does."""
    local, sha = _file(tmp_path, BULK + (3 << 20))
    trace = tmp_path / "trace"
    monkeypatch.setenv("ENVCTL_SSH_TRACE", str(trace))
    lab.set_delay("hidden1", 15)  # a 30 ms round trip at least: far
    connection = connect("hidden1")

    assert push_file(connection, local, REMOTE, sha) == "sent"
    assert hashlib.sha256(lab.path("hidden1", REMOTE).read_bytes()).hexdigest() == sha
    own = [line for line in trace.read_text().splitlines() if line.startswith("connection hidden1 ")]
    assert len(own) == 4 and all("part=$1" in line for line in own), own  # the four parts


def test_the_far_hosts_connections_check_its_host_key_too(lab, connect, tmp_path):
    """The master is up and trusted; the host's key then leaves known_hosts: the connections a
    segmented push opens must refuse the host, and nothing is placed."""
    local, sha = _file(tmp_path, BULK + (1 << 20))
    lab.set_delay("lab2", 15)
    connection = connect("lab2")
    connection.connect()
    lab.forget_host_key("lab2")

    with pytest.raises(RemoteError, match="host key of lab2 .*is not known"):
        push_file(connection, local, REMOTE, sha)
    assert not lab.path("lab2", REMOTE).exists()


@pytest.mark.parametrize("early", [True, False, "segmented"], ids=["hashed as it arrives", "hashed after", "segmented"])
def test_a_host_whose_disk_fills_up_says_so_at_once(lab, connect, tmp_path, early):
    # The host's `cat` failed with "No space left on device", no verdict followed, and the push
    # was taken for a cut connection: the rest sent again three times over, then "kept failing
    # after 4 attempts ... the next run resumes from there", the host's words lost.
    local, sha = _file(tmp_path, 3 << 20)
    connection = connect("lab1")
    directory = os.path.dirname(REMOTE)
    lab.run_in("lab1", "mkdir", "-p", directory)
    assert lab.run_in("lab1", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", directory).returncode == 0
    try:
        with pytest.raises(RemoteError) as raised:
            if early == "segmented":  # a far host's large file: parts on connections of their own
                push_segmented(connection, local, REMOTE, sha, local.stat().st_size)
            else:
                push_file(connection, local, REMOTE, sha, early_hash=early)
        assert "No space left on device" in str(raised.value), str(raised.value)
        assert "kept failing" not in str(raised.value)
    finally:
        lab.run_in("lab1", "umount", directory)
