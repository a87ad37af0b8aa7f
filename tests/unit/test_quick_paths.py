"""The pure parts of the quick paths (envctl/quick_up.py, envctl/quick_status.py,
envctl/engine_socket.py): the record's key, the fingerprints, which engines are asked, records
that are not whole, the constants they copy instead of importing, and what they import.
tests/integration/test_quick.py runs both paths against the engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from envctl import engine_socket, quick_status, quick_up

from support import REPO


def test_only_a_unix_socket_engine_is_asked():
    assert engine_socket.socket_path({}) == "/var/run/docker.sock"
    assert engine_socket.socket_path({"DOCKER_HOST": ""}) == "/var/run/docker.sock"
    assert engine_socket.socket_path({"DOCKER_HOST": "unix:///run/x/docker.sock"}) == "/run/x/docker.sock"
    for other in ("tcp://127.0.0.1:2375", "ssh://box", "unix://relative.sock", "npipe:////./pipe/docker"):
        assert engine_socket.socket_path({"DOCKER_HOST": other}) is None


def test_image_refs_are_quoted_as_docker_py_quotes_them():
    assert engine_socket.quoted("registry:5000/a/b:tag") == "registry:5000/a/b:tag"
    assert engine_socket.quoted("a b#c?") == "a%20b%23c%3F"


def test_the_key_follows_arguments_directory_and_environment_but_not_the_shells_bookkeeping():
    environ = {"HOME": "/home/ana", "DOCKER_CONFIG": "/a", "OLDPWD": "/x", "_": "/usr/bin/envctl", "SHLVL": "1"}
    key = quick_up.record_key(["up", "demo"], environ, cwd="/w")
    assert key == quick_up.record_key(["up", "demo"], dict(environ, OLDPWD="/y", _="/bin/sh", SHLVL="2"), cwd="/w")
    assert key == quick_up.record_key(["up", "demo"], dict(environ, ENVCTL_NO_QUICK="1"), cwd="/w")
    assert key != quick_up.record_key(["up", "demo"], dict(environ, DOCKER_CONFIG="/b"), cwd="/w")
    assert key != quick_up.record_key(["up", "demo"], dict(environ, GREETING="hi"), cwd="/w")
    assert key != quick_up.record_key(["up", "demo:big"], environ, cwd="/w")
    assert key != quick_up.record_key(["up", "demo"], environ, cwd="/elsewhere")


def test_fingerprints_see_a_byte_a_touch_and_a_removal(tmp_path):
    path = tmp_path / "manifest.yaml"
    path.write_text("name: a\n")
    content, metadata = quick_up.content_print(str(path)), quick_up.stat_print(str(path))
    assert content[0] == "sha256"
    path.write_text("name: b\n")  # same size
    assert quick_up.content_print(str(path)) != content
    os.utime(path, ns=(1, 1))
    assert quick_up.stat_print(str(path)) != metadata
    path.unlink()
    assert quick_up.content_print(str(path)) is None and quick_up.stat_print(str(path)) is None
    assert quick_up.content_print(str(tmp_path))[:2] == quick_up.stat_print(str(tmp_path))[:2]  # a directory: by stat


def test_a_record_that_is_not_whole_is_never_an_answer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    environ = {"ENVCTL_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    args = ["up", "demo"]
    assert quick_up.answer(args, environ) is None  # none yet
    record = quick_up.record_dir(environ) / f"{quick_up.record_key(args, environ)}.json"
    record.parent.mkdir(parents=True)
    whole = {"format": quick_up.FORMAT, "socket": "/var/run/docker.sock", "stdout": "", "stderr": "x\n"}
    for written in (b"", b"\x00\xff garbage", json.dumps(whole).encode()[:40], json.dumps([whole]).encode(),
                    json.dumps(dict(whole, format=quick_up.FORMAT + 1)).encode(),
                    json.dumps(whole).encode()):  # whole but without what it checks: no answer either
        record.write_bytes(written)
        assert quick_up.answer(args, environ) is None, written


def test_the_constants_copied_to_stay_light_are_the_full_paths():
    from envctl import containers, engine, runs

    assert quick_status.LABEL_MANIFEST == containers.LABEL_MANIFEST
    assert quick_status.LABEL_VARIANT == containers.LABEL_VARIANT
    assert quick_status.LABEL_VARS == containers.LABEL_VARS
    assert quick_status.LABEL_CARDS == containers.LABEL_CARDS
    assert quick_status.LABEL_USER == containers.LABEL_USER
    assert quick_status.TOP_ARGS == runs.TOP_ARGS
    assert engine_socket.DEFAULT_SOCKET == engine.DEFAULT_SOCKET
    facts = quick_up.container_facts({"Config": {"Labels": {containers.LABEL_HASH: "h", containers.LABEL_IMAGE_ID: "i"}}})
    assert facts["config_hash"] == "h" and facts["image_label"] == "i"


def test_the_quick_modules_import_nothing_heavy():
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import envctl.cli, envctl.quick_up, envctl.quick_status, envctl.engine_socket, "
                           "envctl.manifest.discovery, envctl.cards"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
               and "self [us]" not in line}
    assert "envctl.quick_up" in modules, done.stderr[-2000:]
    heavy = ("typer", "click", "pydantic", "pydantic_core", "docker", "requests", "urllib3", "yaml", "rich")
    assert sorted(m for m in modules if m.split(".")[0] in heavy) == []


def test_a_file_edited_while_up_runs_is_recorded_as_it_was_read(tmp_path, monkeypatch):
    """The record holds the bytes the plan was made from: a manifest edited after `up` read it
    (and before `up` ended) must not be recorded as the bytes that answer rests on."""
    from envctl import quick_up_record

    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ENVCTL_MANIFEST_PATH", str(tmp_path))
    manifest = tmp_path / "demo" / "manifest.yaml"
    manifest.parent.mkdir()
    manifest.write_text("name: demo\n")
    read = quick_up.content_print(str(manifest))
    recording = quick_up_record.Recording.start(["up", "demo"])
    assert recording is not None
    try:
        with open(manifest, encoding="utf-8") as file:  # what `up` plans from
            file.read()
        # Edited meanwhile, by another process (this one's own writes are recorded as it leaves them).
        subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('setup: [{name: new, run: x}]\\n')",
                        str(manifest)], check=True)
        recording.facts = {"manifest": str(manifest), "candidates": []}
    finally:
        recording.finish(0)
    record = json.loads(recording.path.read_text(encoding="utf-8"))
    assert record["files"][str(manifest)] == read != quick_up.content_print(str(manifest))


def test_opening_ssh_while_up_is_recorded_still_leaves_a_record(tmp_path, monkeypatch):
    """A host opened while the command is recorded (ENVCTL_NO_QUICK=1 opens it then, not early)
    reads the CPU's flags for ssh's cipher order and starts ssh with /dev/null on stdin: neither
    is host state the plan rests on, so the record is still written."""
    from envctl import quick_up_record
    from envctl.remote import ssh

    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("name: demo\n")
    ssh._aes_instructions.cache_clear()
    recording = quick_up_record.Recording.start(["up", "demo", "--host", "lab1"])
    assert recording is not None
    try:
        ssh._aes_instructions()
        subprocess.run(["true"], stdin=subprocess.DEVNULL, check=True)
        with open(manifest, encoding="utf-8") as file:
            file.read()
        recording.facts = {"manifest": str(manifest), "candidates": []}
    finally:
        recording.finish(0)
    record = json.loads(recording.path.read_text(encoding="utf-8"))
    assert str(manifest) in record["files"] and "/proc/cpuinfo" not in record["files"]


def test_what_up_wrote_must_still_be_writable_for_a_quick_answer(tmp_path):
    """A record's written paths (quick_up_record._written_paths): a lock held by another
    process, a file gone or a directory gone is the full path's."""
    import fcntl

    lock, directory = tmp_path / "env.lock", tmp_path / "workspace"
    lock.write_text("")
    directory.mkdir()
    written = {str(lock): "file", str(directory): "dir", str(tmp_path): "parent"}
    with quick_up._Writable(written) as writable:
        assert writable.held
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with quick_up._Writable(written) as writable:
            assert not writable.held
    directory.rmdir()
    with quick_up._Writable(written) as writable:
        assert not writable.held
    directory.mkdir()
    lock.unlink()
    with quick_up._Writable(written) as writable:
        assert not writable.held
    with quick_up._Writable({str(tmp_path): "a kind no record holds"}) as writable:
        assert not writable.held
