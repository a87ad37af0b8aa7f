"""The SSH lab itself (tests/sshlab.py), checked with the system's OpenSSH client only, always
through the lab's ssh_config (`ssh -F`) and known_hosts: never the user's ~/.ssh."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import sshlab_build
from sshlab import Lab, LabError
from sshlab_system import ns_id, pids_in_namespaces


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    """An image tarball for `docker import`: /bin/busybox (static) and /bin/sh."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.fail("/bin/busybox missing: `make engine` installs busybox-static", pytrace=False)
    path = tmp_path_factory.mktemp("sshlab") / "busybox.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(busybox, "bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    return path


def engine_id(lab, name: str) -> str:
    result = lab.ssh(name, "docker", "info", "--format", "'{{.ID}}'")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_host_answers(lab):
    for name in lab.names:
        result = lab.ssh(name, "true")
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_each_host_has_its_own_address(lab):
    for name in lab.names:
        result = lab.ssh(name, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
        assert f"inet {lab.ip(name)}/24" in result.stdout, result.stdout + result.stderr


def test_sessions_talk_to_the_hosts_own_engine(lab):
    ids = {name: engine_id(lab, name) for name in ("lab1", "lab2")}
    assert ids["lab1"] != ids["lab2"]
    for name, ident in ids.items():
        assert lab.ssh(name, "echo", "$DOCKER_HOST").stdout.strip() == lab.docker_host(name)
        # The test process reaches the same engine through the socket path the lab exposes ...
        assert lab.docker(name, "info", "--format", "{{.ID}}").stdout.strip() == ident
        # ... and the host's own default socket is that engine too (a private /run per host).
        default = lab.ssh(name, "env", "-u", "DOCKER_HOST", "docker", "info", "--format", "'{{.ID}}'")
        assert default.stdout.strip() == ident, default.stderr


def test_engines_do_not_see_each_others_containers(lab, busybox_tar):
    tag = f"sshlab-busybox:{os.getpid()}"
    name = f"sshlab-probe-{os.getpid()}"
    assert lab.docker("lab2", "import", str(busybox_tar), tag).returncode == 0
    try:
        run = lab.ssh("lab2", "docker", "run", "--rm", "--network", "none", tag, "/bin/busybox", "echo", "inside")
        assert run.stdout.strip() == "inside", run.stderr
        created = lab.ssh("lab2", "docker", "create", "--name", name, tag, "/bin/sh")
        assert created.returncode == 0, created.stderr
        assert name in lab.ssh("lab2", "docker", "ps", "-a", "--format", "'{{.Names}}'").stdout
        assert name not in lab.ssh("lab1", "docker", "ps", "-a", "--format", "'{{.Names}}'").stdout
        assert tag.split(":")[0] not in lab.ssh("lab1", "docker", "images").stdout
    finally:
        lab.docker("lab2", "rm", "-f", name)
        lab.docker("lab2", "rmi", "-f", tag)


def test_home_and_tmp_are_private_to_each_host(lab):
    marker = f"written on lab1 by {os.getpid()}"
    assert lab.ssh("lab1", "sh", "-c", f"'echo {marker} > ~/sshlab-marker; echo x > /tmp/sshlab-marker'").returncode == 0
    try:
        assert lab.path("lab1", "/root/sshlab-marker").read_text().strip() == marker
        assert lab.ssh("lab2", "cat", "~/sshlab-marker").returncode != 0
        assert lab.ssh("lab2", "cat", "/tmp/sshlab-marker").returncode != 0
        assert not Path("/root/sshlab-marker").exists()
    finally:
        lab.path("lab1", "/root/sshlab-marker").unlink(missing_ok=True)
        lab.path("lab1", "/tmp/sshlab-marker").unlink(missing_ok=True)


def test_host_root_is_the_same_directory_on_the_host(lab):
    root = lab.host_root("lab2")
    (root / "dev").mkdir(exist_ok=True)
    (root / "dev/probe").write_text("hello\n")
    try:
        assert lab.ssh("lab2", "cat", str(root / "dev/probe")).stdout == "hello\n"
    finally:
        (root / "dev/probe").unlink()


def test_hidden_host_only_through_the_jump_host(lab):
    hidden = lab.hidden[0]
    assert lab.ssh(hidden, "true").returncode == 0
    direct = lab.ssh(hidden, "true", options=["ProxyJump=none", "ConnectTimeout=3"])
    assert direct.returncode == 255
    with pytest.raises(OSError) as refused:
        socket.create_connection((lab.ip(hidden), 22), timeout=3).close()
    assert not isinstance(refused.value, TimeoutError)  # refused by the route at once, not a timeout
    # Only the jump host has a way there, and it routes nothing; another host has none either.
    assert lab.ssh(lab.jump, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    other = lab.ssh("lab2", "timeout", "3", "bash", "-c", f"'echo > /dev/tcp/{lab.ip(hidden)}/22'")
    assert other.returncode != 0


def test_the_lab_config_leaves_the_host_key_policy_to_the_client(lab):
    """envctl must enforce StrictHostKeyChecking and BatchMode itself, on every hop: the lab's
    config must not do it for envctl, or the tests could not see a hop it misses."""
    for name in (lab.jump, lab.hidden[0]):
        settings = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-G", name], capture_output=True, text=True,
                                  check=True).stdout.splitlines()
        assert "stricthostkeychecking ask" in settings and "batchmode no" in settings
        assert f"userknownhostsfile {lab.known_hosts}" in settings


def test_unknown_host_key_is_refused(lab):
    lab.forget_host_key("lab1")
    assert lab.ip("lab1") not in lab.known_hosts.read_text()
    result = lab.ssh("lab1", "true")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
    lab.restore_known_hosts()
    assert lab.ssh("lab1", "true").returncode == 0


def test_changed_host_key_is_refused(lab):
    lab.change_host_key("lab2")
    result = lab.ssh("lab2", "true")
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    # ssh shows the fingerprint of the key the server really sent: the lab's own.
    assert lab.fingerprint("lab2") in result.stderr
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", lab.fingerprint("lab2"))


def test_wrong_client_key_is_refused(lab):
    # IdentityFile adds up across -o and the config file, so this one uses no config file at
    # all (-F /dev/null) and names every option itself.
    argv = [
        "ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
        "-o", "BatchMode=yes", "-i", str(lab.wrong_key), f"root@{lab.ip('lab1')}", "true",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr
    argv[argv.index(str(lab.wrong_key))] = str(lab.client_key)
    assert subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL).returncode == 0


def test_set_delay_shapes_the_hosts_link(lab):
    lab.set_delay("lab2", 50)
    state = lab.link_state("lab2")
    if lab.delay_mechanism == "netem":
        assert state.count("netem") == 2 and "delay 50ms" in state, state
    else:  # kernel without sch_netem: packets of lab2's switch port queued to the delay daemon
        assert "--physdev-in lab2 -j NFQUEUE --queue-num 2" in state, state
        assert "--physdev-out lab2 -j NFQUEUE --queue-num 2" in state, state
    assert lab.delays() == {"lab2": 50}
    assert lab.ssh("lab2", "true").returncode == 0
    lab.clear_delay("lab2")
    assert "netem" not in lab.link_state("lab2") and "NFQUEUE" not in lab.link_state("lab2")
    assert lab.delays() == {}


def test_drop_connections_cuts_a_running_session(lab):
    session = subprocess.Popen(lab.ssh_argv("lab1", "echo started; sleep 60"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert session.stdout.readline().strip() == "started"
        assert lab.drop_connections("lab1") >= 1
        assert session.wait(timeout=10) == 255  # cut, not left to end its sleep
    finally:
        session.kill()
        session.wait()
    assert lab.ssh("lab1", "true").returncode == 0  # the listener is untouched


def test_stop_refuses_connections_until_start(lab):
    lab.stop("lab3")
    refused = lab.ssh("lab3", "true")
    assert refused.returncode == 255 and "Connection refused" in refused.stderr
    assert lab.ssh("lab2", "true").returncode == 0
    lab.start("lab3")
    assert lab.ssh("lab3", "true").returncode == 0


def test_partition_makes_connections_time_out(lab):
    lab.partition("lab3")
    result = lab.ssh("lab3", "true", options=["ConnectTimeout=2"])
    assert result.returncode == 255 and "timed out" in result.stderr
    lab.heal("lab3")
    assert lab.ssh("lab3", "true").returncode == 0


def test_reset_undoes_every_failure(lab_session):
    lab = lab_session
    lab.forget_host_key("lab1")
    lab.set_delay("lab2", 20)
    lab.stop("lab3")
    lab.partition("hidden1")
    lab.ask_for_password("lab2")
    assert "Permission denied (publickey,password)" in lab.ssh("lab2", "true").stderr
    lab.reset()
    assert lab.delays() == {}
    for name in lab.names:
        assert lab.ssh(name, "true").returncode == 0, name


def test_a_lab_that_cannot_be_built_fails_with_the_reason(monkeypatch):
    with pytest.raises(LabError, match="at least one reachable host"):
        Lab(hosts=0)
    with pytest.raises(LabError, match="jump host 'lab9'"):
        Lab(hosts=1, hidden=1, jump="lab9")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="not root"):
        Lab(hosts=1)


def lab_traces(directory: Path, prefix: str) -> list[str]:
    """Whatever of a lab still exists on the machine."""
    traces = [f"netns {n}" for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
              if n.startswith(prefix + "-")]
    traces += [f"mount {line.split()[4]}" for line in open("/proc/self/mountinfo") if str(directory) in line]
    traces += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/{prefix}-*")]
    if directory.exists():
        traces.append(f"directory {directory}")
    return traces


def test_close_removes_everything_even_with_a_running_container(busybox_tar):
    lab = Lab(hosts=1, hidden=1)
    try:
        assert lab.docker("hidden1", "import", str(busybox_tar), "sshlab-busybox:close").returncode == 0
        run = lab.ssh("hidden1", "docker", "run", "-d", "--network", "none", "sshlab-busybox:close", "/bin/busybox", "sleep", "600")
        assert run.returncode == 0, run.stderr
        netns = [ns_id(f"/run/netns/{lab.host(n).netns}") for n in lab.names]
        directory, prefix = lab.dir, lab._plan.prefix
    finally:
        lab.close()
    assert lab_traces(directory, prefix) == []
    assert not pids_in_namespaces([("net", ident) for ident in netns])


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    """A lab whose process died without teardown (SIGKILL) is removed by the next lab."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from sshlab import Lab\n"
        "lab = Lab(hosts=1)\n"
        "print(lab.dir, lab._plan.prefix, lab.host('lab1').netns, flush=True)\n"
        "time.sleep(600)\n"
    )
    tests_dir = str(Path(__file__).parents[1])
    child = subprocess.Popen([sys.executable, "-c", code, tests_dir], stdout=subprocess.PIPE, text=True)
    try:
        directory, prefix, netns = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    netns_id = ns_id(f"/run/netns/{netns}")
    assert lab_traces(Path(directory), prefix)  # sshd and dockerd of the dead run still there
    with sshlab_build.lock(sshlab_build.BASE_DIR):
        assert sshlab_build.clean_stale(sshlab_build.BASE_DIR) == []
    assert lab_traces(Path(directory), prefix) == []
    assert not pids_in_namespaces([("net", netns_id)])
