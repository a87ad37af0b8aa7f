"""The writes `up` makes through the Host seam, on an SSH lab host (SSHHost): the contract
LocalHost keeps on this machine (tests/unit/test_local_host_writes.py), over real sshd."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from envctl.errors import EnvctlError, FetchError
from servers.http_files import FileServer


@pytest.fixture
def host(world, monkeypatch):
    from envctl.cli_remote import RemoteOptions, single_target

    for key, value in world.environ().items():
        monkeypatch.setenv(key, value)
    return single_target(RemoteOptions(("lab1",), None, None, None))


def test_roots_are_below_the_inventory_data_dir(world, host):
    assert host.cache_root == f"{world.data_dir()}/cache"
    assert host.workspace_root == f"{world.data_dir()}/workspaces"
    assert host.environ() == {"ENVCTL_CACHE": host.cache_root, "ENVCTL_WORKSPACE": host.workspace_root}
    assert host.fetch_mode == "push"


def test_write_file_copy_tree_and_remove_tree(world, host):
    base = f"{world.data_dir()}/scratch"
    host.write_file(f"{base}/a/stamp.json", b'{"x": 1}')
    host.write_file(f"{base}/a/stamp.json", b'{"x": 2}')
    assert host.read_text(f"{base}/a/stamp.json") == '{"x": 2}'
    assert sorted(p.name for p in world.remote("lab1", f"{base}/a").iterdir()) == ["stamp.json"]  # no temporary left
    host.mkdirs(f"{base}/tree/sub")
    host.write_file(f"{base}/tree/sub/f.txt", b"one")
    world.lab.run_in("lab1", "chmod", "-R", "a-w", f"{base}/tree")
    host.write_file(f"{base}/copy/stale", b"old")
    host.copy_tree(f"{base}/tree", f"{base}/copy")
    copied = world.remote("lab1", f"{base}/copy")
    assert sorted(p.name for p in copied.rglob("*")) == ["f.txt", "sub"]
    assert stat.S_IMODE((copied / "sub" / "f.txt").stat().st_mode) & stat.S_IWUSR  # writable there
    world.lab.run_in("lab1", "chmod", "-R", "u+w", f"{base}/tree")
    host.remove_tree(base)
    assert not world.remote("lab1", base).exists()
    assert host.free_bytes(f"{base}/not/yet") > 0  # measured at the nearest existing parent


def test_put_blob_is_verified_there_and_sent_once(world, host, tmp_path):
    data = os.urandom(2 << 20)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(FetchError, match="expected 0000"):
        host.put_blob("0" * 64, source)
    assert not host.has_blob("0" * 64)
    assert host.put_blob(digest, source) == "sent"
    assert host.has_blob(digest) and host.put_blob(digest, source) == "present"
    assert world.remote("lab1", f"{host.cache_root}/blobs/sha256/{digest}").read_bytes() == data


def test_download_on_the_host_is_checked_against_the_sha256(world, host, lab, monkeypatch):
    data = os.urandom(1 << 20)
    monkeypatch.setattr(FileServer, "address", lab.gateway)  # served on the lab network
    with FileServer(files={"w.bin": data}) as mirror:
        with pytest.raises(EnvctlError, match="arrived with sha256"):
            host.download(mirror.url_for("w.bin"), "w.bin", "1" * 64)
        assert not host.has_blob("1" * 64)
        digest = hashlib.sha256(data).hexdigest()
        assert host.download(mirror.url_for("w.bin"), "w.bin", digest) == digest
    assert world.remote("lab1", f"{host.cache_root}/blobs/sha256/{digest}").read_bytes() == data


def test_an_artifact_record_counts_only_beside_its_artifact(world, host):
    placed = f"{host.cache_root}/artifacts/k"
    host.write_file(f"{placed}.json", b'{"files": []}')
    assert host.artifact_record(placed) is None
    host.write_file(placed, b"x")
    assert host.artifact_record(placed) == {"files": []}
    host.write_file(f"{placed}.json", b"{not json")
    assert host.artifact_record(placed) is None
