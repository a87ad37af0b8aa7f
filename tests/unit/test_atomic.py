"""Small state files written by several threads of one process at once (`up --hosts` runs a
thread per host, and they share the local cache's state), and finished files placed once."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from envctl.atomic import place_once, write_text_atomic


def test_concurrent_writers_in_one_process_never_trip_over_each_other(tmp_path):
    target = tmp_path / "state.json"

    def write(n: int) -> None:
        for i in range(50):
            write_text_atomic(target, json.dumps({"writer": n, "i": i}))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(write, n) for n in range(8)]:
            future.result()  # a shared temporary name made some rename fail here
    assert json.loads(target.read_text())["i"] == 49  # whole, from one of the writers
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_place_once_moves_a_file_into_a_free_name(tmp_path):
    source, target = tmp_path / ".x.partial", tmp_path / "x.tar"
    source.write_bytes(b"whole")
    assert place_once(source, target) is True
    assert target.read_bytes() == b"whole" and not source.exists()


def test_place_once_keeps_the_file_already_there(tmp_path):
    """A second writer of the same name leaves the first file (its inode) alone: a reader hashing
    it (envctl/file_digest.py) checks the inode and would take a rename over it for a change."""
    target = tmp_path / "x.tar"
    target.write_bytes(b"first")
    inode = target.stat().st_ino
    source = tmp_path / ".x.partial"
    source.write_bytes(b"second")
    assert place_once(source, target) is False
    assert target.stat().st_ino == inode and target.read_bytes() == b"first"
    assert not source.exists()


def test_place_once_from_many_threads_places_exactly_one(tmp_path):
    target = tmp_path / "x.tar"
    sources = []
    for n in range(8):
        source = tmp_path / f".x.{n}.partial"
        source.write_bytes(f"writer {n}".encode())
        sources.append(source)
    with ThreadPoolExecutor(max_workers=8) as pool:
        placed = list(pool.map(lambda source: place_once(source, target), sources))
    assert placed.count(True) == 1
    assert target.read_bytes() == f"writer {placed.index(True)}".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["x.tar"]


@pytest.mark.parametrize("errno_name", ["EPERM", "ENOSYS", "EMLINK"])
def test_place_once_renames_where_the_file_system_makes_no_link(tmp_path, monkeypatch, errno_name):
    """Some FUSE and network file systems refuse hard links: the finished file is renamed into a
    free name instead, and still never over a file already there."""
    import errno
    import os

    def refused(*_args, **_kwargs):
        raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)))

    monkeypatch.setattr(os, "link", refused)
    source, target = tmp_path / ".x.partial", tmp_path / "x.tar"
    source.write_bytes(b"first")
    assert place_once(source, target) is True and target.read_bytes() == b"first" and not source.exists()
    inode = target.stat().st_ino
    source.write_bytes(b"second")
    assert place_once(source, target) is False and target.stat().st_ino == inode and not source.exists()
