"""The cipher preference on envctl's ssh command lines: AES-GCM first among the ciphers the ssh
config allows, read by the real `ssh -G`; never a cipher the config does not list. Transfers
over these connections against a real sshd are in tests/remote/test_remote_transfer.py."""

from __future__ import annotations

import subprocess

import pytest

from envctl.remote import ssh
from envctl.remote.ssh import SSHConnection, SSHSettings

GCM = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]


@pytest.fixture
def aes_in_hardware(monkeypatch):
    monkeypatch.setattr(ssh, "_aes_instructions", lambda: True)


def _offered(argv: list[str]) -> list[str] | None:
    """The ciphers a command line asks for (-o Ciphers=... or -c), None when it leaves the config's."""
    for flag, value in zip(argv, argv[1:]):
        if flag == "-c" or (flag == "-o" and value.startswith("Ciphers=")):
            return value.removeprefix("Ciphers=").split(",")
    return None


def _configured(config) -> list[str]:
    out = subprocess.run(["ssh", "-G", "-F", str(config), "lab1"], capture_output=True, text=True, check=True).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("ciphers ")).split(",")


def _connection(tmp_path, ciphers: str | None) -> tuple[SSHConnection, object]:
    config = tmp_path / "ssh_config"
    config.write_text("Host lab1\n  HostName 10.213.0.11\n" + (f"  Ciphers {ciphers}\n" if ciphers else ""))
    return SSHConnection("lab1", SSHSettings(config=str(config), control_dir=str(tmp_path / "control"))), config


def test_openssh_defaults_are_kept_with_aes_gcm_first(tmp_path, aes_in_hardware):
    connection, config = _connection(tmp_path, None)
    for argv in (connection.command(["true"]), connection.bulk_command(["true"])):
        offered = _offered(argv)
        assert offered[:2] == GCM
        assert sorted(offered) == sorted(_configured(config))  # the same set: nothing added, nothing dropped


def test_a_config_that_restricts_ciphers_is_obeyed(tmp_path, aes_in_hardware):
    connection, _ = _connection(tmp_path, "aes256-ctr,aes256-gcm@openssh.com")
    for argv in (connection.command(["true"]), connection.bulk_command(["true"])):
        assert _offered(argv) == ["aes256-gcm@openssh.com", "aes256-ctr"]  # never aes128-gcm, never chacha20


def test_without_aes_gcm_in_the_config_or_aes_in_the_cpu_the_config_order_stays(tmp_path, monkeypatch):
    connection, _ = _connection(tmp_path, "aes256-ctr,chacha20-poly1305@openssh.com")
    monkeypatch.setattr(ssh, "_aes_instructions", lambda: True)
    assert _offered(connection.command(["true"])) is None and _offered(connection.bulk_command(["true"])) is None
    connection, _ = _connection(tmp_path, None)
    monkeypatch.setattr(ssh, "_aes_instructions", lambda: False)  # ChaCha20 is the faster one there
    assert _offered(connection.command(["true"])) is None and _offered(connection.bulk_command(["true"])) is None
