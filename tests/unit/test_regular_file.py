"""envctl's own state files are never waited on when something else stands at their name
(envctl/regular_file.py): a FIFO left in a shared cache reads as no record, on every reader of
one. Each reader runs on a thread with a deadline, so that a reader that blocks fails the test
instead of hanging the suite (the FIFO is then opened for writing, which releases it)."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from envctl.regular_file import NotRegularFile, open_regular, read_regular_text

DEADLINE = 10  # seconds: an open that returns at once takes microseconds


def answered_in_time(call):
    """The thread running call(), once it ended or DEADLINE passed, and call()'s result (a list
    holding it, empty while it runs)."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(DEADLINE)
    return thread, result


def release(fifo: Path) -> None:
    """Open `fifo` for writing once, so that a reader blocked in open() returns."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        assert exc.errno == errno.ENXIO  # no reader was waiting


def fifo_at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path, 0o600)
    return path


def test_a_regular_file_is_read_whole(tmp_path):
    path = tmp_path / "record.json"
    path.write_bytes(b'{"a": 1}\n')
    with open_regular(path) as file:
        assert file.read() == b'{"a": 1}\n'
        assert os.get_blocking(file.fileno())  # as open() leaves it
    assert read_regular_text(path) == '{"a": 1}\n'


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = fifo_at(tmp_path / "record.json")
    thread, result = answered_in_time(lambda: pytest.raises(NotRegularFile, open_regular, fifo))
    release(fifo)
    assert not thread.is_alive(), "open_regular waited on a FIFO"
    assert isinstance(result[0].value, OSError)  # the readers' `except OSError` takes it


def test_a_directory_and_a_missing_file_are_oserrors(tmp_path):
    with pytest.raises(NotRegularFile):
        open_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "absent.json")


def test_bytes_that_are_not_utf8_are_a_valueerror_unless_replaced(tmp_path):
    path = tmp_path / "note"
    path.write_bytes(b"caf\xe9")
    with pytest.raises(ValueError):
        read_regular_text(path)
    assert read_regular_text(path, errors="replace") == "caf\ufffd"


def _quick_up_record(tmp_path):
    from envctl import quick_up

    path = fifo_at(tmp_path / "state" / "quick-up" / "key.json")
    return path, lambda: pytest.raises(OSError, quick_up.read_record, path)


def _content_print(tmp_path):
    from envctl import quick_up

    path = tmp_path / "manifest.yaml"
    path.write_text("name: x\n")
    real_stat, swapped = os.stat, []

    # Replaced by a FIFO between content_print's stat (a regular file) and its open.
    def stat_then_swap(target, *args, **kwargs):
        found = real_stat(target, *args, **kwargs)
        if str(target) == str(path) and not swapped:
            swapped.append(True)
            os.unlink(path)
            os.mkfifo(path, 0o600)
        return found

    def call():
        os.stat = stat_then_swap
        try:
            return quick_up.content_print(str(path))
        finally:
            os.stat = real_stat
    return path, call


def _status_note(tmp_path):
    from envctl.quick_status_remote import _kept

    path = fifo_at(tmp_path / "control" / "inventories.json")
    return path, lambda: _kept(str(path))


def _image_identity_records(tmp_path):
    from envctl.image_identity import EngineImages

    path = fifo_at(tmp_path / "cache" / "image-identities.json")
    return path, lambda: EngineImages(None, path)._read_records()


def _artifact_source_record(tmp_path):
    from envctl.artifacts.cache import Cache

    cache = Cache(tmp_path / "cache")
    path = fifo_at(cache._source_record("https://mirror.example/weights.bin"))
    return path, lambda: cache.source_blob("https://mirror.example/weights.bin")


def _artifact_placed_record(tmp_path):
    from envctl.artifacts.cache import Cache

    cache = Cache(tmp_path / "cache")
    path = fifo_at(tmp_path / "cache" / "artifacts" / "weights.json")
    return path, lambda: cache.placed_record("weights")


def _cache_listing(tmp_path):
    from envctl.artifacts.cache_admin import _records

    path = fifo_at(tmp_path / "cache" / "artifacts" / "weights.json")
    return path, lambda: _records(tmp_path / "cache")


def _local_host_artifact_record(tmp_path):
    from envctl.hosts.local import LocalHost

    placed = tmp_path / "cache" / "artifacts" / "weights"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"w")
    path = fifo_at(Path(f"{placed}.json"))
    return path, lambda: LocalHost().artifact_record(str(placed))


def _local_host_text(tmp_path):
    from envctl.hosts.local import LocalHost

    path = fifo_at(tmp_path / "data" / "weights.bin.source.json")
    return path, lambda: LocalHost().read_text(str(path))


def _tarball_identities(tmp_path):
    from envctl.images import IdentityCache

    path = fifo_at(tmp_path / "cache" / "tarballs.json")
    tarball = tmp_path / "image.tar"
    tarball.write_bytes(b"t")
    return path, lambda: IdentityCache(path).get(tarball)


def _build_context_memo(tmp_path):
    from envctl.images import context_digest

    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    path = fifo_at(tmp_path / "cache" / "context-memo.json")
    return path, lambda: context_digest(context, path)


READERS = {
    "quick up's record (read_record)": (_quick_up_record, lambda result: True),
    "a recorded file swapped for a FIFO after its stat (content_print)": (_content_print, lambda r: r[0] != "sha256"),
    "status --host's inventory note": (_status_note, lambda result: result == {}),
    "containerd store's config digests": (_image_identity_records, lambda result: result == {}),
    "an artifact source's blob record": (_artifact_source_record, lambda result: result is None),
    "a placed artifact's record": (_artifact_placed_record, lambda result: result is None),
    "`envctl cache` listing": (_cache_listing, lambda result: result == []),
    "the local host's artifact record": (_local_host_artifact_record, lambda result: result is None),
    "a file read on the local host": (_local_host_text, lambda result: result is None),
    "tarball identities": (_tarball_identities, lambda result: result is None),
    "a build context's digest memo": (_build_context_memo, lambda result: isinstance(result, str)),
}


@pytest.mark.parametrize("reader", READERS)
def test_each_state_reader_takes_a_fifo_for_no_record(tmp_path, reader):
    make, expected = READERS[reader]
    fifo, call = make(tmp_path)
    thread, result = answered_in_time(call)
    waited = thread.is_alive()
    release(fifo)
    thread.join(DEADLINE)
    assert not waited, f"{reader}: waited on a FIFO"
    assert expected(result[0]), result[0]


def test_the_readers_still_read_their_records(tmp_path):
    """The same readers, given the files they expect (the FIFO test would pass for a reader that
    read nothing at all)."""
    from envctl.artifacts.cache import Cache
    from envctl.image_identity import EngineImages
    from envctl.quick_status_remote import _kept

    records = tmp_path / "records.json"
    records.write_text(json.dumps({"sha256:aa": "sha256:bb"}))
    assert EngineImages(None, records)._read_records() == {"sha256:aa": "sha256:bb"}
    assert _kept(str(records)) == {"sha256:aa": "sha256:bb"}
    cache = Cache(tmp_path / "cache")
    (tmp_path / "cache" / "artifacts").mkdir(parents=True)
    (tmp_path / "cache" / "artifacts" / "weights.json").write_text('{"sha256": "cc"}')
    assert cache.placed_record("weights") == {"sha256": "cc"}
