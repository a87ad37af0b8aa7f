"""Servers that answer a range with another span than asked (tests/servers/misbehaving.py):
a resumed or segmented download writes every body where its Content-Range says it belongs,
skips an overlap instead of fetching it again, and starts over — never appends — when a 206
does not say where its bytes go or starts past them. With no digest pinned nothing else would
catch a misplaced byte, so these tests pin none."""

from __future__ import annotations

import json
import os

import pytest

from download_helpers import envctl, placed, sha, write_manifest
from envctl.artifacts import download, urls
from envctl.artifacts.cache import Cache
from envctl.artifacts.download import Downloader, RemoteFile
from servers.http_files import FileServer, sha256_etag
from servers.misbehaving import MisplacedRangeServer, WeakETagServer

MiB = 1 << 20
CUT = MiB + 1000  # where the first response drops: not on any block boundary

PLACES = {
    "block-aligned cache (starts 64 KiB-aligned, before the offset)": lambda n, size: n - n % 65536,
    "whole file as a 206": lambda n, size: 0,
    "span starting after the offset": lambda n, size: n + 4096,
    "206 without Content-Range": lambda n, size: None,
}


@pytest.mark.parametrize("place", PLACES.values(), ids=PLACES.keys())
def test_a_resumed_stream_puts_each_byte_where_the_server_says(tmp_path, place):
    data = os.urandom(3 * MiB)
    with MisplacedRangeServer(place=place, truncate_after=CUT, truncate_count=1) as server:
        server.put("/model.bin", data)
        manifest = write_manifest(tmp_path, f"w: {{source: '{server.url}/model.bin'}}\n")
        fetched = envctl(tmp_path, "fetch", str(manifest))
        assert fetched.returncode == 0, fetched.stderr
        assert server.misplaced >= 1  # the resume did meet the misbehaviour
        assert placed(fetched.stdout)["w"].read_bytes() == data
        if place(CUT, len(data)) is not None and place(CUT, len(data)) <= CUT:
            # The overlap is skipped, the prefix kept: the file's bytes after CUT came once more.
            assert server.bytes_by_path["/model.bin"] == CUT + len(data) - place(CUT, len(data))


def test_a_partial_longer_than_the_file_starts_over_instead_of_failing_forever(tmp_path):
    """What an earlier envctl left after appending a whole-file 206 onto a partial."""
    data = os.urandom(2 * MiB)
    with FileServer() as server:
        url = server.url_for("/model.bin")
        server.put("/model.bin", data)
        part = Cache(tmp_path / "cache").partial(f"{urls.identity(url)}|")
        part.write_bytes(data[:CUT] + data)
        part.with_suffix(".json").write_text(json.dumps(
            {"url": url, "etag": sha256_etag(data), "size": len(data), "mode": "stream", "segments": []}))
        manifest = write_manifest(tmp_path, f"w: {{source: '{url}'}}\n")
        fetched = envctl(tmp_path, "fetch", str(manifest))
        assert fetched.returncode == 0, fetched.stderr
        assert placed(fetched.stdout)["w"].read_bytes() == data


@pytest.mark.parametrize("place", PLACES.values(), ids=PLACES.keys())
def test_segments_take_only_their_own_bytes_from_a_misplaced_span(tmp_path, monkeypatch, place):
    # Segments of 1 MiB above 2 MiB, so a 5 MiB file takes the segmented path.
    monkeypatch.setattr(download, "SEGMENT", MiB)
    monkeypatch.setattr(download, "PARALLEL_THRESHOLD", 2 * MiB)
    data = os.urandom(5 * MiB + 123)
    # Segments start on MiB boundaries: 1000 bytes earlier makes every early span overlap.
    def early(n: int, size: int) -> int | None:
        first = place(n, size)
        return None if first is None else max(0, first - 1000)

    with MisplacedRangeServer(place=early) as server:
        server.put("/shard.bin", data)
        url = server.url_for("/shard.bin")
        cache = Cache(tmp_path / "cache")
        digest, size = Downloader(cache).fetch(RemoteFile("", url, url))
        assert server.misplaced >= 1
        assert (digest, size) == (sha(data), len(data))
        assert cache.blob(digest).read_bytes() == data


def test_a_weak_etag_is_not_what_a_resume_is_conditioned_on(tmp_path):
    """A weak tag in If-Range never matches (RFC 9110 13.1.5; nginx compares strongly): with it
    every resume would fetch the whole file again. Last-Modified is sent instead."""
    data = os.urandom(3 * MiB)
    with WeakETagServer(truncate_after=CUT, truncate_count=1) as server:
        server.put("/model.bin", data)
        manifest = write_manifest(tmp_path, f"w: {{source: '{server.url}/model.bin'}}\n")
        fetched = envctl(tmp_path, "fetch", str(manifest))
        assert fetched.returncode == 0, fetched.stderr
        assert placed(fetched.stdout)["w"].read_bytes() == data
        assert server.ranges_requested("/model.bin") == [None, f"bytes={CUT}-"]
        assert server.bytes_by_path["/model.bin"] == len(data)  # nothing fetched twice
