"""A pinned image.tarball.sha256 is checked in the read that sends the tarball to the engine
(envctl/images.py load_tarball), on both image stores and both ways of sending (the local
socket, and docker-py's API for an engine without one): the last piece of the file is held back
until the whole file's digest is known, so a tarball that is not the pinned one reaches the
engine as an incomplete body and nothing is loaded or tagged. The tarball here is several
pieces long (images.SEND_CHUNK), so that most of it has reached the engine when the mismatch is
found; and the same tarball padded with zeros after its end-of-archive blocks (as GNU tar
pads its last record) past a piece boundary, so that its last piece is zeros only, which an
engine's tar reader never needs. Through `up`: the digest a load verified is remembered, an image already on the engine
is not trusted on a tarball that is not the pinned one, and that mismatch is what is said first.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from pathlib import Path

import docker
import pytest
import zstandard

from engines import CLASSIC, connect
from envctl.images import SEND_CHUNK, load_tarball
from envctl.tarballs import ImageError, Sha256Mismatch, read_identity
from support import moves_mtime_once
from testimages import remove_images, save_image

pytestmark = pytest.mark.both_engines

REF = "envctl-it/verified:1"
WRONG = "ab" * 32


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """A `docker save` tarball of REF, a little over three send pieces long (random bytes)."""
    path = tmp_path_factory.mktemp("verified") / "big.tar"
    save_image(connect(CLASSIC).client, {"etc/payload": os.urandom(3 * SEND_CHUNK)}, path, REF)
    assert path.stat().st_size > 3 * SEND_CHUNK
    return path


@pytest.fixture
def absent(engine, big):
    """Neither REF nor any ID the tarball's image may get is on the engine, before and after (the
    tests through `up` ask for it before make_env, so that its container is removed first)."""

    names = (REF, *read_identity(big).ids)
    remove_images(engine, names)
    yield
    remove_images(engine, names)


@pytest.fixture(scope="module")
def padded(big) -> Path:
    """`big` with zeros after its end: its last 8 KiB piece and the end of the one before are zeros."""
    path = big.with_name("padded.tar")
    size = big.stat().st_size
    path.write_bytes(big.read_bytes() + bytes((SEND_CHUNK - size % SEND_CHUNK) % SEND_CHUNK + 8192))
    assert path.stat().st_size % SEND_CHUNK == 8192
    return path


def _nothing_loaded(engine, tarball: Path) -> None:
    for name in (REF, *read_identity(tarball).ids):
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(name)


def _socket(engine_under_test) -> str:
    return engine_under_test.docker_host.removeprefix("unix://")


@pytest.mark.parametrize("way", ["socket", "api"])
def test_a_tarball_that_is_not_the_pinned_one_loads_nothing(engine, engine_under_test, big, absent, way):
    counted = []
    with pytest.raises(Sha256Mismatch) as raised:
        load_tarball(engine, big, counted.append, _socket(engine_under_test) if way == "socket" else None,
                     expected_sha256=WRONG)
    assert raised.value.message == f"{big} has sha256 {_sha256(big)}, the manifest expects {WRONG}; nothing was loaded"
    _nothing_loaded(engine, big)


@pytest.mark.parametrize("way", ["socket", "api"])
def test_the_pinned_tarball_is_loaded_in_the_read_that_checks_it(engine, engine_under_test, big, absent, way):
    counted = []
    lines = load_tarball(engine, big, counted.append, _socket(engine_under_test) if way == "socket" else None,
                         expected_sha256=_sha256(big))
    assert lines == [f"Loaded image: {REF}"]
    assert engine.images.get(REF).id in read_identity(big).ids
    assert sum(counted) == big.stat().st_size


@pytest.mark.parametrize("way", ["socket", "api"])
def test_zeros_after_the_archive_are_not_all_that_is_held_back(engine, engine_under_test, padded, absent, way):
    socket_path = _socket(engine_under_test) if way == "socket" else None
    with pytest.raises(Sha256Mismatch):
        load_tarball(engine, padded, None, socket_path, expected_sha256=WRONG)
    _nothing_loaded(engine, padded)
    assert load_tarball(engine, padded, None, socket_path, expected_sha256=_sha256(padded)) == [f"Loaded image: {REF}"]


def test_bytes_after_the_end_of_archive_are_not_sent_before_the_digest_is_checked(engine, engine_under_test, big, absent,
                                                                                 tmp_path):
    """A tarball with bytes other than zeros after its end-of-archive blocks (appended to, or
    two tars in one file) is not the pinned one. The engine's tar reader stops at those blocks
    and the containerd store then loads and tags the image whatever follows, so what is held
    back must begin before them: with only the appended block held back, the image appeared
    within a second of the mismatch (5 runs of 5). Watched for 5 s: the engine answers the
    load it was sent on its own time, after envctl has closed the connection."""
    tarball = tmp_path / "appended.tar"
    tarball.write_bytes(big.read_bytes() + b"\x01" * 512)
    with pytest.raises(Sha256Mismatch):
        load_tarball(engine, tarball, None, _socket(engine_under_test), expected_sha256=_sha256(big))
    for _ in range(25):
        _nothing_loaded(engine, big)
        time.sleep(0.2)


def test_a_tarball_changed_while_it_is_sent_loads_nothing(engine, engine_under_test, big, absent, tmp_path):
    """On a local socket the file goes by sendfile while a second read hashes it
    (envctl/file_digest.py): a file written meanwhile (its mtime moves with the first bytes
    sent) may have sent other bytes than those hashed, and its tail is not sent."""
    tarball = tmp_path / "changing.tar"
    tarball.write_bytes(big.read_bytes())
    with pytest.raises(ImageError, match="changed while envctl loaded it"):
        load_tarball(engine, tarball, moves_mtime_once(tarball), _socket(engine_under_test), expected_sha256=_sha256(tarball))
    _nothing_loaded(engine, tarball)


def test_a_tarball_removed_while_it_is_sent_is_said_to_have_changed(engine, engine_under_test, big, absent, tmp_path):
    """Removed once its first bytes are sent (a cache cleaned, a download restarted): the
    second read's look at the file finds no file there. Said as a change, not as a path that
    "does not exist and cannot be created" with a hint to create its parent directory."""
    tarball = tmp_path / "removed.tar"
    tarball.write_bytes(big.read_bytes())

    def remove(n):
        if tarball.exists():
            tarball.unlink()

    with pytest.raises(ImageError, match="changed while envctl loaded it"):
        load_tarball(engine, tarball, remove, _socket(engine_under_test), expected_sha256=_sha256(big))
    _nothing_loaded(engine, big)


@pytest.fixture(scope="module")
def packed(big) -> dict:
    """`big` compressed: on a local socket envctl decompresses these itself and sends the plain tar."""
    out = {}
    for compression, compress in (("gzip", lambda data: gzip.compress(data, compresslevel=1)),
                                  ("zstd", lambda data: zstandard.ZstdCompressor().compress(data))):
        out[compression] = big.with_name(f"big.tar.{compression}")
        out[compression].write_bytes(compress(big.read_bytes()))
    return out


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_compressed_tarball_decompressed_here_is_checked_on_the_way(engine, engine_under_test, big, packed, absent, compression):
    tarball = packed[compression]
    with pytest.raises(Sha256Mismatch) as raised:
        load_tarball(engine, tarball, None, _socket(engine_under_test), expected_sha256=WRONG)
    assert raised.value.message == f"{tarball} has sha256 {_sha256(tarball)}, the manifest expects {WRONG}; nothing was loaded"
    _nothing_loaded(engine, big)
    counted = []
    lines = load_tarball(engine, tarball, counted.append, _socket(engine_under_test), expected_sha256=_sha256(tarball))
    assert lines == [f"Loaded image: {REF}"]
    assert engine.images.get(REF).id in read_identity(big).ids
    assert sum(counted) == tarball.stat().st_size  # progress counts the file as stored


def test_a_truncated_gzip_tarball_is_refused_by_envctl_before_its_end_reaches_the_engine(engine, engine_under_test, big, packed,
                                                                                        absent, tmp_path):
    data = packed["gzip"].read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError) as raised:
        load_tarball(engine, cut, None, _socket(engine_under_test))
    assert raised.value.message.startswith(f"{cut} is not a readable gzip-compressed image tarball (EOFError: ")
    assert raised.value.message.endswith("); nothing was loaded")
    _nothing_loaded(engine, big)


@pytest.mark.parametrize("where", ["middle", "end-of-archive zeros"])
def test_a_truncated_zstd_tarball_is_refused_by_envctl_before_its_end_reaches_the_engine(engine, engine_under_test, big, absent,
                                                                                        tmp_path, where):
    """python-zstandard's reader ends a truncated frame without an error; cut in the archive's
    end-of-archive zeros (its last frame holds only them), the shorter archive was loaded whole
    where `docker load -i` says 'unexpected EOF' (both engines)."""
    data = big.read_bytes()
    assert data[-1024:] == bytes(1024)
    compressor = zstandard.ZstdCompressor()
    if where == "middle":
        packed = compressor.compress(data)
        packed = packed[: len(packed) * 2 // 3]
    else:
        packed = compressor.compress(data[:-1024]) + compressor.compress(data[-1024:])[:-3]
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(packed)
    with pytest.raises(ImageError) as raised:
        load_tarball(engine, cut, None, _socket(engine_under_test))
    assert raised.value.message == (f"{cut} is not a readable zstd-compressed image tarball "
                                    "(ZstdError: the file ends inside a zstd frame (truncated)); nothing was loaded")
    _nothing_loaded(engine, big)


MANIFEST = """\
device: {{kind: cpu}}
image:
  ref: {ref}
  tarball: {{source: {tarball}, sha256: {sha256}}}
"""


def test_up_remembers_the_sha256_it_verified_while_loading(absent, make_env, big):
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=REF, tarball=big, sha256=_sha256(big)))
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert f"image      {REF}: loaded" in done.stderr
    remembered = json.loads((env.base / "cache" / "state" / "tarballs.json").read_text())
    assert remembered[str(big.resolve())]["sha256"] == _sha256(big)


def test_an_image_already_there_is_not_taken_from_a_tarball_that_is_not_the_pinned_one(absent, make_env, engine, big):
    engine.images.load(big.read_bytes())  # someone loaded it; the manifest pins another tarball
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=REF, tarball=big, sha256=WRONG))
    done = env.run("up", str(env.manifest))
    assert done.returncode == 5, done.stderr
    assert f"{big} has sha256 {_sha256(big)}, the manifest expects {WRONG}; nothing was loaded" in done.stderr
    assert env.get() is None


def test_a_tarball_of_another_image_and_another_sha256_is_said_to_differ_from_the_pin(absent, make_env, big):
    env = make_env("cpu")
    env.write(MANIFEST.format(ref="envctl-it/elsewhere:1", tarball=big, sha256=WRONG))
    done = env.run("up", str(env.manifest))
    assert done.returncode == 5, done.stderr
    assert f"{big} has sha256 {_sha256(big)}, the manifest expects {WRONG}; nothing was loaded" in done.stderr
