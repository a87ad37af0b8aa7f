"""envctl/file_digest.py: the sha256 of a file read on a thread of its own, and the refusal of a
file that changed between the caller's read and that thread's (size, mtime, inode)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from envctl.file_digest import PIECE, FileChanged, FileSha256, changed_since


@pytest.mark.parametrize("size", [0, 1, PIECE, PIECE + 1, 5 * PIECE + 7])
def test_the_digest_is_the_file_s_and_progress_counts_every_byte(tmp_path, size):
    path = tmp_path / "f"
    data = os.urandom(size)
    path.write_bytes(data)
    counted = []
    assert FileSha256(path, os.stat(path), counted.append).result() == hashlib.sha256(data).hexdigest()
    assert sum(counted) == size


def test_a_file_that_grew_after_the_caller_s_read_began_is_refused(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 1000)
    before = os.stat(path)
    with open(path, "ab") as grow:
        grow.write(b"b")
    with pytest.raises(FileChanged, match="changed while it was being read"):
        FileSha256(path, before).result()


def test_a_file_rewritten_in_place_is_refused_by_its_mtime(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 1000)
    before = os.stat(path)
    with open(path, "r+b") as rewrite:  # same size, other bytes
        rewrite.write(b"b")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    with pytest.raises(FileChanged):
        FileSha256(path, before).result()


def test_a_file_replaced_by_another_of_the_same_size_and_mtime_is_refused_by_its_inode(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 1000)
    before = os.stat(path)
    other = tmp_path / "g"
    other.write_bytes(b"b" * 1000)
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, path)
    with pytest.raises(FileChanged):
        FileSha256(path, before).result()


def test_a_read_error_is_the_caller_s_to_see(tmp_path):
    with pytest.raises(IsADirectoryError):
        FileSha256(tmp_path, os.stat(tmp_path)).result()


def test_a_file_removed_after_the_caller_s_read_began_is_a_change(tmp_path):
    """Not FileNotFoundError, which envctl's commands say as a path to create."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    before = os.stat(path)
    path.unlink()
    with pytest.raises(FileChanged, match="removed while it was being read"):
        FileSha256(path, before).result()


def test_stop_leaves_no_thread_behind(tmp_path):
    path = tmp_path / "f"
    with open(path, "wb") as sparse:  # 1 GiB of zeros written in no time: about a second to hash
        sparse.truncate(1 << 30)
    counted = []
    hashing = FileSha256(path, os.stat(path), counted.append)
    hashing.stop()
    assert not any(t.name == "envctl-sha256" and t.is_alive() for t in threading.enumerate())
    assert sum(counted) < 1 << 30  # stopped before the end


def test_changed_since_tells_a_file_written_since_from_one_left_alone(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    before = os.stat(path)
    assert not changed_since(path, before)
    with open(path, "ab") as grow:
        grow.write(b"b")
    assert changed_since(path, before)
    path.unlink()
    assert changed_since(path, before)
