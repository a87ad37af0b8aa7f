"""The writes `up` makes through the Host seam, on this machine (LocalHost): the same contract
SSHHost keeps over SSH (tests/remote/test_remote_host_writes.py). A real filesystem under
tmp_path; no engine is needed."""

import hashlib
import os
import stat
from pathlib import Path

import pytest

from envctl.artifact_steps import place, writable_copy
from envctl.errors import FetchError
from envctl.hosts.local import LocalHost
from envctl.errors import WorldChanged
from envctl.manifest.loader import load
from envctl.plan import Options
from envctl.planning import plan_on


@pytest.fixture
def host(tmp_path):
    return LocalHost("/", {"HOME": str(tmp_path / "home"), "ENVCTL_CACHE": str(tmp_path / "cache"),
                           "ENVCTL_WORKSPACE": str(tmp_path / "workspaces")})


def test_roots_come_from_the_environment_given(host, tmp_path):
    assert host.cache_root == str(tmp_path / "cache")
    assert host.workspace_root == str(tmp_path / "workspaces")
    assert host.environ()["ENVCTL_CACHE"] == host.cache_root
    assert host.fetch_mode is None and host.cards is None


def test_write_file_replaces_whole_and_makes_directories(host, tmp_path):
    target = tmp_path / "a" / "b" / "stamp.json"
    host.mkdirs(str(target.parent))
    host.write_file(str(target), b'{"x": 1}')
    host.write_file(str(target), b'{"x": 2}')
    assert target.read_text() == '{"x": 2}'
    assert [p.name for p in target.parent.iterdir()] == ["stamp.json"]  # no temporary left beside it


def test_put_blob_verifies_and_never_keeps_a_file_that_does_not_match(host, tmp_path):
    data = os.urandom(4096)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(FetchError, match="does not have the sha256"):
        host.put_blob("0" * 64, source)
    assert not host.has_blob("0" * 64)
    assert host.put_blob(digest, source) == "sent"
    assert host.has_blob(digest) and host.put_blob(digest, source) == "present"
    blob = Path(host.cache_root, "blobs", "sha256", digest)
    assert blob.read_bytes() == data and not stat.S_IMODE(blob.stat().st_mode) & 0o222  # the store is read-only


def test_copy_tree_is_writable_and_replaces_what_was_there(host, tmp_path):
    tree = tmp_path / "placed"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("one")
    os.chmod(tree / "sub" / "f.txt", 0o444)
    copy = tmp_path / "ws" / "artifacts" / "code"
    copy.mkdir(parents=True)
    (copy / "stale").write_text("old")
    host.copy_tree(str(tree), str(copy))
    assert sorted(p.name for p in copy.rglob("*")) == ["f.txt", "sub"]
    (copy / "sub" / "f.txt").write_text("edited")  # writable
    assert (tree / "sub" / "f.txt").read_text() == "one"
    host.remove_tree(str(copy))
    assert not copy.exists()
    host.remove_tree(str(copy))  # nothing there: nothing to do


def test_artifact_record_is_none_until_the_artifact_is_complete(host, tmp_path):
    placed = tmp_path / "cache" / "artifacts" / "k"
    placed.parent.mkdir(parents=True)
    (placed.parent / "k.json").write_text('{"files": []}')
    assert host.artifact_record(str(placed)) is None  # a record without its artifact is no artifact
    placed.write_text("x")
    assert host.artifact_record(str(placed)) == {"files": []}
    (placed.parent / "k.json").write_text("{not json")
    assert host.artifact_record(str(placed)) is None


def _manifest(tmp_path) -> Path:
    source = tmp_path / "src" / "config.json"
    source.parent.mkdir()
    source.write_text('{"hidden_size": 64}\n')
    path = tmp_path / "m.yaml"
    path.write_text(f"name: hostwrites\ndescription: host writes\ndevice: {{kind: cpu}}\nimage: {{ref: busybox:1}}\n"
                    f"artifacts:\n  config: {{source: {source}, target: /models/config.json, mode: rw}}\n")
    return path


def test_artifact_steps_follow_the_plan_and_a_cached_artifact_that_left_stops_up(host, tmp_path, monkeypatch):
    for key, value in host.environ().items():
        monkeypatch.setenv(key, value)
    loaded = load(str(_manifest(tmp_path)))
    fresh = plan_on(host, loaded, Options(skip_driver_check=True))
    assert [a.action for a in fresh.artifacts] == ["fetch+copy"]
    lines = []
    assert place(host, loaded, fresh, lines.append) == [("artifact", "config", "fetch+copy")]
    copy = Path(fresh.artifacts[0].host_path)
    assert copy.read_text() == '{"hidden_size": 64}\n' and f"artifact   config: writable copy at {copy}" in lines
    again = plan_on(host, loaded, Options(skip_driver_check=True))
    assert [a.action for a in again.artifacts] == ["cached"]
    assert place(host, loaded, again, lines.append) == [("artifact", "config", "cached")]
    # The writable copy is made again only when the artifact changed: an edit in it is kept.
    copy.write_text("edited")
    assert not writable_copy(host, again.artifacts[0], host.artifact_record(again.artifacts[0].cache_path), lines.append)
    assert copy.read_text() == "edited"
    # The cache is emptied after the plan was made: up stops and says so, it does not fetch.
    host.remove_tree(str(Path(host.cache_root) / "artifacts"))
    with pytest.raises(WorldChanged, match="config left the cache of local"):
        place(host, loaded, again, lines.append)


def test_an_artifact_without_a_source_is_refused_not_reported_cached(host, tmp_path, monkeypatch):
    for key, value in host.environ().items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "m.yaml"
    path.write_text("name: nosource\ndescription: no source yet\ndevice: {kind: cpu}\nimage: {ref: busybox:1}\n"
                    "artifacts:\n  weights: {target: /models/w.bin, obtain: ask the data team for the file}\n")
    loaded = load(str(path))
    the_plan = plan_on(host, loaded, Options(skip_driver_check=True))
    assert [a.action for a in the_plan.artifacts] == ["missing"]
    said = []
    with pytest.raises(FetchError, match="no source yet"):
        place(host, loaded, the_plan, said.append)
    assert said == []
