"""The checks of envctl/quick_up_remote.py and envctl/quick_up.py that keep a record of a remote
no-op from running anything but what envctl itself would run: only a record this user alone can
write is read (read_record), and only commands of the shape SSHConnection.command builds, through
the recorded host's live master, are replayed (through)."""

from __future__ import annotations

import json
import os

import pytest

from envctl.quick_up import read_record
from envctl.quick_up_remote import through

MASTER = "/tmp/envctl-ssh-0/df8800ded10f42a50b6f"
CONFIG = "/home/u/.ssh/envctl_config"
BUILT = ["ssh", "-F", CONFIG, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=auto",
         "-o", f"ControlPath={MASTER}", "-o", "ControlPersist=120", "-T", "lab1", "--", "sh -c 'true'"]


def test_a_command_as_envctl_builds_it_is_replayed():
    assert through(BUILT, MASTER, {"destination": "lab1", "config": CONFIG})
    assert through(["ssh", *BUILT[3:]], MASTER, {"destination": "lab1", "config": None})  # no -F: OpenSSH's own config
    tty = BUILT[:-4] + ["-t"] + BUILT[-3:]
    assert through(tty, MASTER, {"destination": "lab1", "config": CONFIG})


@pytest.mark.parametrize("argv", [
    ["touch", *BUILT[1:]],  # not ssh
    ["ssh", "-E", "/tmp/log", *BUILT[1:]],  # a log file written
    ["ssh", "-F", "/tmp/other_config", *BUILT[3:]],  # another config (LocalCommand, ProxyCommand ...)
    ["ssh", "-o", "ControlPath=none", *BUILT[1:]],  # its first ControlPath wins: no master
    ["ssh", "-o", "ControlPath=/tmp/another-master", *BUILT[1:]],
    BUILT[:-3] + ["lab2", "--", "true"],  # another host
    BUILT[:-2] + ["true"],  # no `--`
    BUILT + ["more"],
    ["ssh", "-v", *BUILT[1:]],  # a flag alone
    ["ssh", "-oControlPath=none", *BUILT[1:]],
    [w.replace("ControlPath=", "controlpath=") if w.startswith("ControlPath=") else w for w in BUILT],
    BUILT[:1] + BUILT[3:9] + BUILT[11:],  # no ControlPath at all
    "ssh lab1 -- true",
    [1, 2, 3, 4, 5],
    [],
])
def test_any_other_command_is_not(argv):
    assert not through(argv, MASTER, {"destination": "lab1", "config": CONFIG})


def test_only_a_record_this_user_alone_can_write_is_read(tmp_path):
    record = tmp_path / "r.json"
    record.write_text(json.dumps({"format": 1}))
    record.chmod(0o600)
    assert read_record(record) == {"format": 1}
    record.chmod(0o644)  # others may read it: it holds no secret
    assert read_record(record) == {"format": 1}
    for mode in (0o620, 0o602, 0o666):
        record.chmod(mode)
        assert read_record(record) is None
    record.chmod(0o600)
    if os.getuid() == 0:  # another user's file (only root can make one here)
        os.chown(record, 4242, -1)
        assert read_record(record) is None
        os.chown(record, 0, -1)
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OSError):
        read_record(tmp_path / "dir.json")
    with pytest.raises(OSError):
        read_record(tmp_path / "absent.json")
    record.write_text("{not json")
    with pytest.raises(ValueError):
        read_record(record)
