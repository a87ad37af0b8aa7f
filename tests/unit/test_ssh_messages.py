"""Reading OpenSSH's own words (its real messages, as 9.2 prints them) into envctl's errors, and
the ssh command lines envctl builds. The behaviour against a real sshd is in tests/remote/."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from envctl.hosts.base import CommandResult
from envctl.remote.ssh import SSHConnection, SSHSettings, _fingerprint_in, _unknown_key

UNKNOWN = """\
debug1: Server host key: ssh-ed25519 SHA256:jumpjumpjumpjumpjumpjumpjumpjumpjumpjumpjum
debug1: Host '10.213.0.2' is known and matches the ED25519 host key.
debug1: Server host key: ssh-ed25519 SHA256:nFDcy4IfBt8zEJrgu4nVcjiM3Rxw3cR/xoAejHiBdaA
No ED25519 host key is known for 10.213.1.2 and you have requested strict checking.
Host key verification failed.
"""

CHANGED = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:nFDcy4IfBt8zEJrgu4nVcjiM3Rxw3cR/xoAejHiBdaA.
Please contact your system administrator.
Host key for 10.213.0.3 has changed and you have requested strict checking.
Host key verification failed.
"""


def test_the_refused_key_is_the_last_one_offered_not_the_jump_hosts():
    assert _fingerprint_in(UNKNOWN) == "SHA256:nFDcy4IfBt8zEJrgu4nVcjiM3Rxw3cR/xoAejHiBdaA"
    assert _unknown_key(UNKNOWN)


def test_a_changed_key_is_not_taken_for_an_unknown_one():
    assert not _unknown_key(CHANGED)
    assert _fingerprint_in(CHANGED) == "SHA256:nFDcy4IfBt8zEJrgu4nVcjiM3Rxw3cR/xoAejHiBdaA"
    error = SSHConnection("lab3", SSHSettings(config="/dev/null")).explain(CommandResult(255, "", CHANGED))
    assert "has CHANGED" in error.message and "SHA256:nFDcy4IfBt8zEJrgu4nVcjiM3Rxw3cR" in error.message
    assert error.exit_code == 7 and "ssh-keygen -R" in error.hint


def test_a_refused_login_points_at_the_keys_ssh_uses():
    error = SSHConnection("lab1", SSHSettings(config="/dev/null")).explain(
        CommandResult(255, "", "root@10.213.0.2: Permission denied (publickey).\n"))
    assert error.message == "lab1: the server refused our key (root@10.213.0.2: Permission denied (publickey).)"
    assert "ssh -G lab1" in error.hint


def test_commands_reach_the_remote_shell_as_one_quoted_word_each(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host lab1\n  HostName 10.213.0.11\n")
    connection = SSHConnection("lab1", SSHSettings(config=str(config), control_dir="/tmp/envctl-ssh-test"))
    argv = connection.command(["sh", "-c", 'echo "$1"', "sh", "a b; rm -rf /"])
    assert argv[:3] == ["ssh", "-F", str(config)]
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv
    destination = argv.index("lab1")
    assert argv[destination + 1] == "--"
    assert shlex.split(argv[destination + 2]) == ["sh", "-c", 'echo "$1"', "sh", "a b; rm -rf /"]


@pytest.mark.parametrize("settings, interval", [("", "10"), ("  ServerAliveInterval 60\n", "10"),
                                                ("  ServerAliveInterval 3\n", "3")])
def test_every_command_carries_the_keepalive_that_notices_a_dead_server(tmp_path, settings, interval):
    """What ssh makes of a command's whole argv (`ssh -G` with it): a keepalive of 10 s at most."""
    config = tmp_path / "ssh_config"
    config.write_text("Host lab1\n  HostName 10.213.0.11\n" + settings)
    argv = SSHConnection("lab1", SSHSettings(config=str(config), control_dir="/tmp/envctl-ssh-test")).command(["true"])
    destination = argv.index("lab1")
    done = subprocess.run([*argv[:destination], "-G", "lab1"], capture_output=True, text=True, timeout=30)
    assert f"\nserveraliveinterval {interval}\n" in done.stdout, done.stderr


def test_options_the_user_must_win_come_before_ours():
    connection = SSHConnection("lab1", SSHSettings(config="/dev/null", control_dir="/tmp/envctl-ssh-test"))
    argv = connection.base("-T", "lab1", first=("StrictHostKeyChecking=accept-new",), master=False)
    # ssh takes the first value given for an option
    assert argv.index("StrictHostKeyChecking=accept-new") < argv.index("StrictHostKeyChecking=yes")


def test_a_host_behind_a_bastion_gets_envctls_own_proxycommand(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host inner\n  ProxyJump bastion\nHost bastion\n  StrictHostKeyChecking no\n  BatchMode no\n")
    argv = SSHConnection("inner", SSHSettings(config=str(config), control_dir="/tmp/envctl-ssh-test")).command(["true"])
    proxy = [arg for arg in argv if arg.startswith("ProxyCommand=")]
    assert len(proxy) == 1 and "StrictHostKeyChecking=yes" in proxy[0] and "BatchMode=yes" in proxy[0]
    assert proxy[0].endswith("-W '[%h]:%p' -- bastion")


def test_a_refused_bastion_login_is_told_apart_from_the_hosts(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host inner\n  HostName 10.213.1.13\n  ProxyJump bastion\nHost bastion\n  HostName 10.213.0.11\n")
    connection = SSHConnection("inner", SSHSettings(config=str(config), control_dir="/tmp/envctl-ssh-test"))
    error = connection.explain(CommandResult(255, "", "root@10.213.0.11: Permission denied (publickey,password).\n"
                                                      "Connection closed by UNKNOWN port 65535\n"))
    assert error.message == ("inner: jump host bastion (10.213.0.11) on the way to inner refused our key "
                             "(root@10.213.0.11: Permission denied (publickey,password).)")
    assert "never answers a password" in error.hint
