"""Bytes as sent: a server's Content-Encoding label never changes what envctl stores, in one
stream, in segments and across resumes; bodies without a length and short bodies are handled.
Apache's stock `AddEncoding x-gzip .gz .tgz` labels every .tar.gz `Content-Encoding: x-gzip`
(many distributions ship it), and clients that decode then see more bytes than the length."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from download_helpers import envctl, placed, sha, write_manifest
from servers.fixtures import file_server  # noqa: F401

MiB = 1 << 20


def tarball(size: int) -> bytes:
    """A real .tar.gz of about `size` random bytes (random: gzip cannot shrink it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        payload = os.urandom(size)
        info = tarfile.TarInfo("AdvertiseGen/train.json")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@pytest.mark.parametrize("label", ["gzip", "x-gzip", "deflate", "br"])
def test_a_labelled_tarball_is_stored_as_sent_and_extracts(tmp_path, file_server, label):
    data = tarball(300_000)
    file_server.put("/AdvertiseGen.tar.gz", data)
    file_server.content_encoding = label  # sent whatever the client asks for
    manifest = write_manifest(tmp_path, f"adgen: {{source: '{file_server.url_for('/AdvertiseGen.tar.gz')}', "
                                        f"sha256: {sha(data)}, extract: true}}\n")
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 0, done.stderr
    tree = placed(done.stdout)["adgen"]
    assert (tree / "AdvertiseGen" / "train.json").stat().st_size == 300_000
    # Every request asked for the bytes unencoded.
    assert {s.accept_encoding for s in file_server.seen} == {"identity"}


def test_a_labelled_file_cut_short_is_resumed_with_the_raw_bytes(tmp_path, file_server):
    data = tarball(3 * MiB)
    file_server.put("/torch.tar.gz", data)
    file_server.content_encoding = "gzip"
    file_server.truncate_after, file_server.truncate_count = MiB, 1
    manifest = write_manifest(tmp_path, f"t: {{source: '{file_server.url_for('/torch.tar.gz')}', sha256: {sha(data)}}}\n")
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 0, done.stderr
    assert placed(done.stdout)["t"].read_bytes() == data
    assert f"bytes={MiB}-" in file_server.ranges_requested("/torch.tar.gz")  # resumed from the raw offset


def test_a_labelled_large_file_in_segments_is_the_file(tmp_path, file_server):
    data = gzip.compress(os.urandom(70 * MiB), compresslevel=1)
    file_server.put("/layers.tar.gz", data)
    file_server.content_encoding = "gzip"
    manifest = write_manifest(tmp_path, f"l: {{source: '{file_server.url_for('/layers.tar.gz')}', sha256: {sha(data)}}}\n")
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 0, done.stderr
    assert sha(placed(done.stdout)["l"].read_bytes()) == sha(data)
    ranges = [r for r in file_server.ranges_requested("/layers.tar.gz") if r]
    assert len(ranges) == 5  # 16 MiB segments: the parallel path was taken


def test_an_unpinned_labelled_file_keeps_the_served_bytes(tmp_path, file_server):
    data = gzip.compress(b"plain text config\n" * 1000)
    file_server.put("/config.json.gz", data)
    file_server.content_encoding = "gzip"
    manifest = write_manifest(tmp_path, f"c: {{source: '{file_server.url_for('/config.json.gz')}'}}\n")
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 0, done.stderr
    assert placed(done.stdout)["c"].read_bytes() == data


@pytest.mark.parametrize("truncate", [None, 700_000])
def test_a_body_without_a_length_is_taken_whole_and_a_cut_one_resumed(tmp_path, file_server, truncate):
    data = os.urandom(2 * MiB)
    file_server.put("/stream.bin", data)
    file_server.chunked = True  # Transfer-Encoding: chunked, no Content-Length
    file_server.truncate_after, file_server.truncate_count = truncate, 1
    manifest = write_manifest(tmp_path, f"s: {{source: '{file_server.url_for('/stream.bin')}', sha256: {sha(data)}}}\n")
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 0, done.stderr
    assert placed(done.stdout)["s"].read_bytes() == data
    if truncate:
        assert file_server.ranges_requested("/stream.bin")[-1] == f"bytes={truncate}-"


def test_a_digest_mismatch_of_a_labelled_file_says_the_bytes_were_kept_as_sent(tmp_path, file_server):
    data = gzip.compress(os.urandom(10_000))
    file_server.put("/w.tar.gz", data)
    file_server.content_encoding = "gzip"
    decoded = sha(gzip.decompress(data))  # what a publisher who hashed the unpacked file would pin
    manifest = write_manifest(tmp_path, f"w: {{source: '{file_server.url_for('/w.tar.gz')}', sha256: {decoded}}}\n")
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 6, done.stderr
    assert (f"w.tar.gz: sha256 {sha(data)} does not match the expected {decoded} (source "
            f"{file_server.url_for('/w.tar.gz')}; the server labelled them Content-Encoding: gzip and envctl keeps "
            "bytes as sent); the download was discarded") in done.stderr
    assert "Traceback" not in done.stderr
