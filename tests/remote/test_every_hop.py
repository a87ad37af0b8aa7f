"""Host keys are checked, and no prompt is answered, on every hop to a host: through bastions too.

With ProxyJump, OpenSSH starts the jump connection as `ssh [-l U] [-p P] [-J ...] [-F CONFIG]
[-v] -W '[%h]:%p' BASTION` (openssh-portable ssh.c): no -o option of the first ssh reaches it,
so the bastion follows only its own config entry. Configs that turn checking off for some hosts
are common in the wild, e.g. `StrictHostKeyChecking no` + `UserKnownHostsFile /dev/null` under
a bastion's or a whole fleet's entry (datastax/zdm-proxy-automation zdm_ssh_config.tpl,
fbehrens51/terraforming-pws-dark sshconfig.tpl). The lab's own config sets no policy (see
tests/sshlab.py), so each test here gives the bastion such an entry and sees what envctl does.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

HIDDEN = "hidden1"


def config_with(world, tmp_path: Path, entries: str, name: str = "ssh_config") -> dict:
    """An ssh config of the lab's entries with `entries` before them (for each option, the first
    value OpenSSH reads wins), and the test's environment using it."""
    config = tmp_path / name
    config.write_text(entries.strip() + "\n\n" + world.lab.ssh_config.read_text())
    return world.environ(ENVCTL_SSH_CONFIG=str(config))


def own_known_hosts(world) -> Path:
    """envctl's own known_hosts in the test's HOME (hops whose config keeps keys in /dev/null)."""
    return world.base / "home/.config/envctl/known_hosts"


def test_a_bastion_whose_config_turns_checking_off_is_checked_and_its_key_can_be_accepted(world, lab, tmp_path):
    # The relaxed bastion entry comes from an included file, under Match: as ssh -G reads it.
    (tmp_path / "bastion.conf").write_text(
        f"Match originalhost {lab.jump}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n")
    env = config_with(world, tmp_path, f"Include {tmp_path / 'bastion.conf'}")
    jump_key = lab.fingerprint(lab.jump)

    refused = world.run("status", "--host", HIDDEN, env=env)
    assert refused.returncode == 7, refused.stderr
    assert f"the host key of jump host {lab.jump} ({lab.ip(lab.jump)}) on the way to {HIDDEN} is not known " \
           f"(offered: {jump_key})" in refused.stderr
    assert f"--accept-host-key {jump_key}" in refused.stderr and str(own_known_hosts(world)) in refused.stderr

    wrong = world.run("status", "--host", HIDDEN, "--accept-host-key", "SHA256:" + "A" * 43, env=env)
    assert wrong.returncode == 7 and "nothing was recorded" in wrong.stderr
    assert not own_known_hosts(world).exists()

    known_before = lab.known_hosts.read_text()
    accepted = world.run("status", "--host", HIDDEN, "--accept-host-key", jump_key, env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert own_known_hosts(world).read_text().split() == [lab.ip(lab.jump), *lab.host_public_key(lab.jump).split()[:2]]
    assert lab.known_hosts.read_text() == known_before  # the config's other files are not touched
    world.close_connections()
    assert world.run("status", "--host", HIDDEN, env=env).returncode == 0  # recorded: no flag needed

    # What envctl recorded is held too: another key there stops the run.
    world.close_connections()
    impostor = (lab.dir / "client/impostor_ed25519.pub").read_text().split()[:2]
    own_known_hosts(world).write_text(f"{lab.ip(lab.jump)} {' '.join(impostor)}\n")
    changed = world.run("status", "--host", HIDDEN, "--accept-host-key", jump_key, env=env)
    assert changed.returncode == 7
    assert f"the host key of jump host {lab.jump} ({lab.ip(lab.jump)}) on the way to {HIDDEN} has CHANGED" \
           in changed.stderr, changed.stderr


def test_a_changed_bastion_key_stops_even_when_its_config_says_no_checking(world, lab, tmp_path):
    env = config_with(world, tmp_path, f"Host {lab.jump}\n  StrictHostKeyChecking no")
    lab.change_host_key(lab.jump)
    for extra in ((), ("--accept-host-key", lab.fingerprint(lab.jump))):
        result = world.run("status", "--host", HIDDEN, *extra, env=env)
        assert result.returncode == 7, result.stderr
        assert f"jump host {lab.jump} ({lab.ip(lab.jump)}) on the way to {HIDDEN} has CHANGED" in result.stderr
        assert f"now {lab.fingerprint(lab.jump)}" in result.stderr and "does not connect" in result.stderr
        assert f"ssh-keygen -R {lab.ip(lab.jump)} -f {lab.known_hosts}" in result.stderr


def test_unknown_keys_of_a_bastion_and_of_the_host_behind_it_are_accepted_one_by_one(world, lab, tmp_path):
    # accept-new on the bastion would take any key it is offered: envctl does not.
    env = config_with(world, tmp_path, f"Host {lab.jump}\n  StrictHostKeyChecking accept-new")
    lab.forget_host_key(lab.jump)
    lab.forget_host_key(HIDDEN)
    jump_key, hidden_key = lab.fingerprint(lab.jump), lab.fingerprint(HIDDEN)

    first = world.run("status", "--host", HIDDEN, env=env)
    assert first.returncode == 7
    assert f"jump host {lab.jump} ({lab.ip(lab.jump)}) on the way to {HIDDEN} is not known (offered: {jump_key})" \
        in first.stderr, first.stderr
    assert lab.ip(lab.jump) not in lab.known_hosts.read_text()

    # The bastion's key accepted: the host behind it is the next unknown one, with its own key.
    second = world.run("status", "--host", HIDDEN, "--accept-host-key", jump_key, env=env)
    assert second.returncode == 7
    assert f"the host key of {HIDDEN} ({lab.ip(HIDDEN)}) is not known (offered: {hidden_key})" in second.stderr
    assert lab.host_public_key(lab.jump).split()[1] in lab.known_hosts.read_text()

    third = world.run("status", "--host", HIDDEN, "--accept-host-key", hidden_key, env=env)
    assert third.returncode == 0, third.stderr
    assert lab.host_public_key(HIDDEN).split()[1] in lab.known_hosts.read_text()


def test_a_bastion_asking_for_a_password_fails_at_once_and_is_never_answered(world, lab, tmp_path):
    askpass = tmp_path / "askpass"
    asked = tmp_path / "asked"
    askpass.write_text(f"#!/bin/sh\necho \"$1\" >> {asked}\nexit 1\n")
    askpass.chmod(askpass.stat().st_mode | stat.S_IXUSR)
    # Any prompt of any ssh process goes to this program, even without a terminal.
    prompts = {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
    lab.ask_for_password(lab.jump)

    # The fault is real: an ssh that may prompt is asked for the bastion's password.
    plain = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", "StrictHostKeyChecking=yes", lab.jump, "true"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                           env={**os.environ, **prompts})
    assert plain.returncode == 255 and "password" in asked.read_text(), plain.stderr
    asked.unlink()

    result = world.run("status", "--host", HIDDEN, env=world.environ(**prompts))
    assert result.returncode == 7
    assert f"jump host {lab.jump} ({lab.ip(lab.jump)}) on the way to {HIDDEN} refused our key" in result.stderr, \
        result.stderr
    assert "Permission denied (publickey,password)" in result.stderr and "never answers a password" in result.stderr
    assert not asked.exists(), asked.read_text()


def test_two_bastions_in_user_host_port_forms_are_each_checked(world, lab, tmp_path):
    """`ProxyJump root@lab2:22,root@<lab1's address>`: lab2, then lab1 reached from lab2 by its
    bare address (a spec of no config entry), then the hidden host."""
    first, second = "lab2", lab.jump
    entries = f"Host {HIDDEN}\n  ProxyJump root@{first}:22,root@{lab.ip(second)}\n" \
              f"Host {first}\n  StrictHostKeyChecking no\n  UserKnownHostsFile {lab.known_hosts}"
    env = config_with(world, tmp_path, entries)
    assert world.run("status", "--host", HIDDEN, env=env).returncode == 0
    sshd_log = (lab.host(second).path / "sshd.log").read_text()
    assert f"Accepted publickey for root from {lab.ip(first)}" in sshd_log  # the second hop came from lab2
    world.close_connections()

    lab.change_host_key(first)
    changed = world.run("status", "--host", HIDDEN, env=env)
    assert changed.returncode == 7
    assert f"jump host {first} ({lab.ip(first)}) on the way to {HIDDEN} has CHANGED" in changed.stderr, changed.stderr
    lab.restore_known_hosts()

    lab.forget_host_key(second)
    unknown = world.run("status", "--host", HIDDEN, env=env)
    assert unknown.returncode == 7
    assert f"jump host {lab.ip(second)} on the way to {HIDDEN} is not known (offered: {lab.fingerprint(second)})" \
        in unknown.stderr, unknown.stderr
    accepted = world.run("status", "--host", HIDDEN, "--accept-host-key", lab.fingerprint(second), env=env)
    assert accepted.returncode == 0, accepted.stderr


def test_the_host_itself_with_known_hosts_in_dev_null_is_checked_against_envctls_own(world, lab, tmp_path):
    env = config_with(world, tmp_path, "Host lab2\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null")
    key = lab.fingerprint("lab2")
    refused = world.run("status", "--host", "lab2", env=env)
    assert refused.returncode == 7
    assert f"the host key of lab2 ({lab.ip('lab2')}) is not known (offered: {key})" in refused.stderr, refused.stderr
    accepted = world.run("status", "--host", "lab2", "--accept-host-key", key, env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert lab.host_public_key("lab2").split()[1] in own_known_hosts(world).read_text()


def test_an_old_style_ssh_w_proxycommand_bastion_is_checked_and_its_key_recorded_hashed(world, lab, tmp_path):
    """`ProxyCommand ssh -W %h:%p BASTION`, the bastion form before ProxyJump that lab guides still
    show, with the bastion relaxed (no checking, /dev/null known_hosts) and HashKnownHosts yes (as
    Debian's and Ubuntu's /etc/ssh/ssh_config set it): envctl reads it as a jump, so the bastion is
    held to the policy, its key is accepted into envctl's own known_hosts hashed as ssh would
    write it, and the host at its end is still checked."""
    config = tmp_path / "ssh_config"
    entries = f"Host {HIDDEN}\n  ProxyCommand ssh -F {config} -q -W %h:%p {lab.jump}\n" \
              f"Host {lab.jump}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  HashKnownHosts yes"
    env = config_with(world, tmp_path, entries)
    jump_key = lab.fingerprint(lab.jump)

    refused = world.run("status", "--host", HIDDEN, env=env)
    assert refused.returncode == 7
    assert f"the host key of jump host {lab.jump} ({lab.ip(lab.jump)}) on the way to {HIDDEN} is not known " \
           f"(offered: {jump_key})" in refused.stderr, refused.stderr

    accepted = world.run("status", "--host", HIDDEN, "--accept-host-key", jump_key, env=env)
    assert accepted.returncode == 0, accepted.stderr
    recorded = own_known_hosts(world).read_text()
    assert recorded.startswith("|1|") and lab.ip(lab.jump) not in recorded, recorded  # hashed, as configured
    assert lab.host_public_key(lab.jump).split()[1] in recorded

    world.close_connections()
    lab.forget_host_key(HIDDEN)
    behind = world.run("status", "--host", HIDDEN, env=env)
    assert behind.returncode == 7
    assert f"the host key of {HIDDEN} ({lab.ip(HIDDEN)}) is not known (offered: {lab.fingerprint(HIDDEN)})" \
        in behind.stderr, behind.stderr
