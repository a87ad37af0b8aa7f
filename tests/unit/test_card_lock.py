"""The host-wide card lock on this machine: one file per engine address in the temporary
directory, taken with flock(2) through a read-only descriptor (a file another user made, and
cannot be written by this one, still serves)."""

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import threading

import pytest

from envctl.card_lock import _REMOTE_HOLD, host_lock, lock_path
from envctl.hosts.local import LocalHost


def test_one_lock_per_engine_address_whatever_the_host_root(tmp_path):
    here = lock_path(LocalHost(str(tmp_path / "a"), {"DOCKER_HOST": "unix:///run/one.sock"}))
    same = lock_path(LocalHost(str(tmp_path / "b"), {"DOCKER_HOST": "unix:///run/one.sock"}))
    other = lock_path(LocalHost(str(tmp_path / "a"), {"DOCKER_HOST": "tcp://10.0.0.5:2375"}))
    default = lock_path(LocalHost(str(tmp_path / "a"), {}))
    assert here == same and here != other and default == lock_path(LocalHost("/", {"DOCKER_HOST": "unix:///var/run/docker.sock"}))


def test_the_lock_excludes_another_holder_until_released(tmp_path):
    path = tmp_path / "cards.lock"
    path.write_text("")
    path.chmod(0o444)  # as another user's file would be to this one
    other = os.open(path, os.O_RDONLY)
    try:
        with host_lock(path):
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(other)


def test_a_missing_lock_file_is_made(tmp_path):
    path = tmp_path / "dir" / "cards.lock"
    with host_lock(path):
        assert path.exists()


def test_the_lock_file_is_readable_by_every_user_whatever_the_umask_of_its_maker(tmp_path):
    # A user whose umask is 077 (hardened lab servers) makes the lock first: a 0600 file would
    # refuse every other user's open(O_RDONLY), and no other user could bring anything up.
    path = tmp_path / "cards.lock"
    before = os.umask(0o077)
    try:
        with host_lock(path):
            pass
    finally:
        os.umask(before)
    assert path.stat().st_mode & 0o777 == 0o644


def test_the_ssh_hosts_lock_directory_is_readable_by_every_user_whatever_the_umask(tmp_path):
    # The script an SSH host runs (here through this machine's sh and flock(1), as a host runs it):
    # flock(1) opens the directory read-only, so a 0700 one made by the first user locks out the rest.
    lock_dir = tmp_path / "envctl-cards-0123.lock.d"
    held = subprocess.run(["sh", "-c", f"umask 077; exec sh -c {shlex.quote(_REMOTE_HOLD)} sh \"$0\"", str(lock_dir)],
                          input=b"", capture_output=True, timeout=60)
    assert held.returncode == 0 and held.stdout.strip() == b"held", held
    assert lock_dir.stat().st_mode & 0o777 == 0o755


def test_one_engine_socket_named_by_two_paths_is_one_lock(tmp_path):
    # /var/run is a link to /run on Debian and most systemd distributions: DOCKER_HOST=unix:///run/docker.sock
    # and the default unix:///var/run/docker.sock are one engine, and so one lock.
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var/run").symlink_to(tmp_path / "run")
    by_link = lock_path(LocalHost("/", {"DOCKER_HOST": f"unix://{tmp_path}/var/run/docker.sock"}))
    direct = lock_path(LocalHost("/", {"DOCKER_HOST": f"unix://{tmp_path}/run/docker.sock"}))
    assert by_link == direct


def _enter_and_leave(lock) -> None:
    with lock:
        pass


def test_an_up_that_waits_for_the_lock_says_so(tmp_path):
    path = tmp_path / "cards.lock"
    said = []
    with host_lock(path):
        waiter = threading.Thread(target=_enter_and_leave, args=(host_lock(path, said.append),))
        waiter.start()
        waiter.join(timeout=1)  # still waiting: the lock is held here
        assert waiter.is_alive()
    waiter.join(timeout=60)
    assert not waiter.is_alive() and len(said) == 1 and f"waiting for the card lock {path}" in said[0]


class _ThisMachineAsSSHHost:
    """An SSH host whose commands run here through sh: `_remote_lock` as an SSH host runs it,
    with this machine's flock(1). `noise`: what a shell startup file prints before the command."""

    fetch_mode = "ssh"
    name = "labx"

    def __init__(self, socket: str, noise: str = ""):
        self.docker_socket = socket
        self.connection = self
        self.noise = noise

    def command(self, argv):
        return ["sh", "-c", f"printf '%s' {shlex.quote(self.noise)}; exec \"$@\"", "sh", *argv]


def test_an_ssh_hosts_lock_says_when_it_waits_and_passes_over_lines_a_startup_file_prints(tmp_path):
    from envctl.card_lock import hold

    host = _ThisMachineAsSSHHost(f"unix://{tmp_path}/docker.sock", noise="Welcome to the lab\nheld-over quota\n")
    where = f"/tmp/envctl-cards-{hashlib.sha256(host.docker_socket.encode()).hexdigest()[:16]}.lock.d"
    said = []
    try:
        with hold(host, said.append):  # the noise was not a refusal
            pass
        assert said == []
        other = os.open(where, os.O_RDONLY)  # another up holds it
        fcntl.flock(other, fcntl.LOCK_EX)
        waiter = threading.Thread(target=_enter_and_leave, args=(hold(host, said.append),))
        waiter.start()
        waiter.join(timeout=2)
        assert waiter.is_alive()
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
        waiter.join(timeout=60)
        assert not waiter.is_alive() and len(said) == 1 and f"waiting for the card lock on labx" in said[0]
    finally:
        shutil.rmtree(where, ignore_errors=True)
