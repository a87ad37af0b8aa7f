"""Sessions opened ahead of the push that takes them (envctl/remote/standby.py), against a lab
host's real sshd: a push takes one and its bytes arrive whole and verified; one nobody takes
ends having run nothing, at once or when envctl exits; one whose master ended is passed over
for a new session. Their command line's quoting in dash, bash and busybox ash:
tests/unit/test_standby_line.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from envctl.remote import standby
from envctl.remote.ssh import SSHConnection, SSHSettings
from envctl.remote.transfer import push_file

REMOTE = "/root/envctl-standby/blob"
AWAITING = "IFS= read -r line"  # in the command line of a waiting session, here and on the host


@pytest.fixture
def connection(lab):
    """An SSHConnection to lab1 with a master of its own (up), closed after."""
    control = tempfile.mkdtemp(prefix="ecs-")  # a short path: unix sockets allow ~100 bytes
    made = SSHConnection("lab1", SSHSettings(config=str(lab.ssh_config), control_dir=control))
    made.connect()
    yield made
    for _, process in standby._waiting.pop(made.control_path, []):
        standby._close(process)
    made.close()
    lab.run_in("lab1", "rm", "-rf", os.path.dirname(REMOTE))
    shutil.rmtree(control, ignore_errors=True)


def _file(tmp_path, size: int):
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _awaiting(control_dir: str | None = None) -> list[str]:
    """The processes of this machine whose command line is a waiting session's: the ssh commands
    here (those of `control_dir`'s masters only, when given) and, the lab hosts sharing this
    machine's processes, their shells on the hosts (this test's alone: the suite runs one test
    at a time)."""
    found = subprocess.run(["pgrep", "-af", AWAITING], capture_output=True, text=True, check=False).stdout
    return [line for line in found.splitlines() if "pgrep" not in line
            and (control_dir is None or " ssh " not in f" {line} " or control_dir in line)]


def _host_shell_waits(within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not [line for line in _awaiting() if " sh -c nl=" in line]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _none_awaiting(within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while _awaiting():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_push_takes_a_session_opened_ahead(lab, connection, tmp_path):
    local, sha = _file(tmp_path, (3 << 20) + 11)
    standby.open(connection, 2)
    opened = [process for _, process in standby._waiting[connection.control_path]]
    assert len(opened) == 2 and all(p.poll() is None for p in opened)

    assert push_file(connection, local, REMOTE, sha) == "sent"
    assert hashlib.sha256(lab.path("lab1", REMOTE).read_bytes()).hexdigest() == sha
    left = [process for _, process in standby._waiting[connection.control_path]]
    assert left == opened[1:]  # the first one ran the push, and ended with it
    assert opened[0].poll() == 0
    assert push_file(connection, local, REMOTE, sha) == "present"  # in the second one
    assert standby._waiting[connection.control_path] == []
    assert push_file(connection, local, REMOTE, sha) == "present"  # none left: a session of its own


def test_a_session_nobody_takes_ends_having_run_nothing(lab, connection):
    standby.open(connection, 2)
    assert len(_awaiting(connection.settings.control_dir)) >= 2  # here (the ssh commands), on the host (their shells)
    for _, process in standby._waiting.pop(connection.control_path):
        standby._close(process)
        assert process.poll() is not None
    assert _none_awaiting(), _awaiting()


def test_sessions_still_waiting_when_the_pushes_are_done_are_ended(lab, connection, tmp_path):
    local, sha = _file(tmp_path, 1 << 20)
    standby.open(connection, 2)
    assert push_file(connection, local, REMOTE, sha) == "sent"
    (_, left), = standby._waiting[connection.control_path]
    standby.discard(connection)  # as `up` does after its artifact and image steps
    assert left.poll() is not None and connection.control_path not in standby._waiting
    assert _none_awaiting(), _awaiting()
    assert push_file(connection, local, REMOTE, sha) == "present"  # in a session of its own


def test_the_sessions_of_an_envctl_that_exits_end_with_it(lab, connection):
    """Killed at exit, or ended by the EOF of their stdin when envctl's end of the pipe closes:
    either way none is left, here or on the host."""
    script = f"""
import sys
from envctl.remote import standby
from envctl.remote.ssh import SSHConnection, SSHSettings
standby.open(SSHConnection("lab1", SSHSettings(config={str(lab.ssh_config)!r}, control_dir={connection.settings.control_dir!r})), 2)
print(len(standby._waiting.popitem()[1]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "2"), done.stderr
    assert _none_awaiting(), _awaiting()


def test_a_session_whose_master_ended_is_passed_over(lab, connection, tmp_path):
    local, sha = _file(tmp_path, 1 << 20)
    standby.open(connection, 1)
    (_, waiting), = standby._waiting[connection.control_path]
    # On the master once its shell waits on the host (an ssh started after the master ended
    # would make a connection of its own, and wait there).
    assert _host_shell_waits(), _awaiting()
    connection.close()  # the master ends, and the sessions on it
    assert waiting.wait(timeout=30) == 255
    assert push_file(connection, local, REMOTE, sha) == "sent"  # on a new master, in a session of its own
    assert hashlib.sha256(lab.path("lab1", REMOTE).read_bytes()).hexdigest() == sha
    assert standby._waiting[connection.control_path] == []
