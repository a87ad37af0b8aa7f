"""A compressed tarball not read before is read once, by its load (envctl/image_step.py
read_while_loading): the plan asks the engine first, and where it has neither the ref's image
nor the pinned one, the tarball's identity and sha256 are read from the bytes decompressed for
the engine and checked before the tarball's tail is sent. A tarball that fails a check loads
nothing. Through the image step as `up` runs it, and through `envctl up` and `plan`, on both
image stores.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import docker
import pytest

from engines import CLASSIC, connect
from envctl.artifacts.sources import Source
from envctl.image_step import ensure_image
from envctl.images import SEND_CHUNK, IdentityCache
from envctl.plan import EnsureImage
from envctl.tarballs import ImageError, Sha256Mismatch, read_identity
from support import moves_mtime_once
from testimages import remove_images, save_image

pytestmark = pytest.mark.both_engines

REF = "envctl-it/read-while-loading:1"
OTHER = "envctl-it/read-while-loading-other:1"
WRONG_ID = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    """A gzip-compressed `docker save` tarball of REF, a few send pieces long."""
    directory = tmp_path_factory.mktemp("read-while-loading")
    plain = directory / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/payload": os.urandom(3 * SEND_CHUNK)}, plain, REF)
    path = directory / "image.tar.gz"
    path.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=1))
    return path


@pytest.fixture
def absent(engine, packed):
    """Neither REF, OTHER nor any ID of the tarball's image is on the engine, before and after."""

    names = (REF, OTHER, *read_identity(packed).ids)
    remove_images(engine, names)
    yield
    remove_images(engine, names)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nothing_loaded(engine, tarball: Path) -> None:
    for name in (REF, OTHER, *read_identity(tarball).ids):
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(name)


def _step(tarball: Path, ref: str = REF, sha256: str | None = None, expected_id: str | None = None) -> EnsureImage:
    return EnsureImage(ref, expected_id, "tarball", str(tarball), sha256, None, False, "load")


def _ensure(engine, engine_under_test, tarball: Path, cache: Path, step: EnsureImage, labels: list):
    def progress(label, total):
        labels.append(label)
        return lambda n: None

    return ensure_image(engine, step, Source("file", str(tarball)), IdentityCache(cache), progress,
                        engine_under_test.docker_host.removeprefix("unix://"), current=None)


def test_a_new_compressed_tarball_is_read_once_by_its_load_and_remembered(engine, engine_under_test, packed, absent, tmp_path):
    cache = tmp_path / "tarballs.json"
    labels: list = []
    outcome = _ensure(engine, engine_under_test, packed, cache, _step(packed, sha256=_sha256(packed)), labels)
    assert outcome.action == "loaded"
    assert engine.images.get(REF).id == outcome.image_id
    # One read: the load's. A read of its own first asked for a "reading" bar before "loading".
    assert labels == [f"loading {packed.name}"]
    remembered = IdentityCache(cache).get(packed, need_sha256=True)
    assert remembered is not None and remembered.sha256 == _sha256(packed)
    assert outcome.image_id in remembered.ids


def test_a_new_compressed_tarball_that_is_not_the_pinned_one_loads_nothing(engine, engine_under_test, packed, absent, tmp_path):
    wrong = "ab" * 32
    with pytest.raises(Sha256Mismatch) as raised:
        _ensure(engine, engine_under_test, packed, tmp_path / "tarballs.json", _step(packed, sha256=wrong), [])
    assert raised.value.message == f"{packed} has sha256 {_sha256(packed)}, the manifest expects {wrong}; nothing was loaded"
    _nothing_loaded(engine, packed)


def test_a_new_compressed_tarball_of_another_image_loads_nothing(engine, engine_under_test, packed, absent, tmp_path):
    with pytest.raises(ImageError) as raised:
        _ensure(engine, engine_under_test, packed, tmp_path / "tarballs.json", _step(packed, ref=OTHER), [])
    assert raised.value.message == f"{packed} holds {REF}, not {OTHER}; nothing was loaded"
    _nothing_loaded(engine, packed)


def test_a_new_compressed_tarball_of_another_pinned_id_loads_nothing(engine, engine_under_test, packed, absent, tmp_path):
    with pytest.raises(ImageError) as raised:
        _ensure(engine, engine_under_test, packed, tmp_path / "tarballs.json", _step(packed, expected_id=WRONG_ID), [])
    assert raised.value.message.startswith(f"{packed} holds image sha256:")
    assert raised.value.message.endswith(f", the manifest pins {WRONG_ID}; nothing was loaded")
    _nothing_loaded(engine, packed)


def test_a_truncated_new_compressed_tarball_loads_nothing(engine, engine_under_test, packed, absent, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    data = packed.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError) as raised:
        _ensure(engine, engine_under_test, cut, tmp_path / "tarballs.json", _step(cut), [])
    assert raised.value.message.startswith(f"{cut} is not a readable gzip-compressed image tarball (EOFError: ")
    _nothing_loaded(engine, packed)


def test_a_compressed_tarball_still_being_written_is_said_to_be_so(engine, engine_under_test, packed, absent, tmp_path):
    """A download still under way: the file ends early because it is still growing. Said as a
    change ("run again once complete"), not as a damaged file to download again."""
    growing = tmp_path / "growing.tar.gz"
    data = packed.read_bytes()
    growing.write_bytes(data[: len(data) // 2])

    def progress(label, total):  # the load's read counts the bytes it reads: the writer appends meanwhile
        return moves_mtime_once(growing)

    step = _step(growing)
    with pytest.raises(ImageError) as raised:
        ensure_image(engine, step, Source("file", str(growing)), IdentityCache(tmp_path / "tarballs.json"), progress,
                     engine_under_test.docker_host.removeprefix("unix://"), current=None)
    assert raised.value.message == f"{growing} changed while envctl loaded it (a download or copy still under way?); nothing was loaded"
    _nothing_loaded(engine, packed)


MANIFEST = """\
device: {{kind: cpu}}
image:
  ref: {ref}
  tarball: {{source: {tarball}}}
"""


def _remembered(env, tarball: Path) -> bool:
    state = env.base / "cache" / "state" / "tarballs.json"
    return state.is_file() and str(tarball.resolve()) in json.loads(state.read_text())


def test_plan_leaves_a_new_compressed_tarball_unread_when_the_engine_has_no_image(absent, make_env, packed):
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=REF, tarball=packed))
    done = env.run("plan", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert "read and checked as it loads" in done.stdout  # the plan says what it did not check
    assert not _remembered(env, packed)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert f"image      {REF}: loaded" in done.stderr
    assert _remembered(env, packed)


def test_plan_reads_a_new_compressed_tarball_when_the_ref_names_an_image(absent, make_env, engine, packed):
    """The ref names an image: whether it is the tarball's is what the tarball says."""
    engine.images.load(gzip.decompress(packed.read_bytes()))
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=REF, tarball=packed))
    done = env.run("plan", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert _remembered(env, packed)
    assert "read and checked as it loads" not in done.stdout
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert f"image      {REF}: present" in done.stderr


def test_a_new_compressed_tarball_removed_while_it_loads_is_said_to_have_changed(engine, engine_under_test, packed, absent,
                                                                                  tmp_path):
    """Removed once its first bytes are read: the sha256's own read finds no file. Said as a
    change, nothing loaded, and nothing remembered."""
    tarball = tmp_path / "removed.tar.gz"
    tarball.write_bytes(packed.read_bytes())
    cache = tmp_path / "tarballs.json"

    def progress(label, total):
        def remove(n):
            if tarball.exists():
                tarball.unlink()
        return remove

    with pytest.raises(ImageError, match="changed while envctl loaded it"):
        ensure_image(engine, _step(tarball), Source("file", str(tarball)), IdentityCache(cache), progress,
                     engine_under_test.docker_host.removeprefix("unix://"), current=None)
    _nothing_loaded(engine, packed)
    assert not cache.exists() or str(tarball) not in cache.read_text()
