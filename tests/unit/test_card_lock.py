"""The host-wide card lock on this machine: one file per engine address in the temporary
directory, taken with flock(2) through a read-only descriptor (a file another user made, and
cannot be written by this one, still serves)."""

import fcntl
import os

import pytest

from envctl.card_lock import host_lock, lock_path
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
