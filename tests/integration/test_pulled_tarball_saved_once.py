"""A pulled image bound for air-gapped hosts is written into this machine's cache as a `docker
save` tarball (envctl/registry_step.py). `up --hosts` asks for it from a thread per host at the
same moment: it is saved once, and the file a host's push is already hashing is never renamed
over (the hash checks the file's inode and would call that a change: envctl/file_digest.py)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from envctl.artifacts.cache import Cache
from envctl.registry_step import _saved
from testimages import _rootfs_tar, remove_images


class CountingImages:
    """The real client's `images`, counting the images looked up to be saved."""

    def __init__(self, images):
        self._images = images
        self.gets = 0

    def get(self, ref):
        self.gets += 1
        return self._images.get(ref)


class CountingClient:
    def __init__(self, client):
        self.images = CountingImages(client.images)


def test_threads_of_several_hosts_save_the_image_once(engine, tmp_path):
    ref = f"envctl-it/saved-once:{uuid.uuid4().hex[:8]}"
    repository, tag = ref.rsplit(":", 1)
    engine.api.import_image_from_data(_rootfs_tar({"etc/saved": uuid.uuid4().hex.encode()}), repository=repository,
                                      tag=tag)
    try:
        image_id = engine.images.get(ref).id
        client, cache = CountingClient(engine), Cache(tmp_path / "cache")
        meet = threading.Barrier(4)
        seen = []

        def save():
            meet.wait()
            path = _saved(client, ref, image_id, cache, None)
            seen.append((path, path.stat().st_ino))  # the file this host would push and hash
            return path

        with ThreadPoolExecutor(max_workers=4) as pool:
            paths = [f.result() for f in [pool.submit(save) for _ in range(4)]]
        assert client.images.gets == 1, "saved more than once"
        assert len(set(paths)) == 1
        assert {inode for _, inode in seen} == {paths[0].stat().st_ino}  # never renamed over
        assert [p.name for p in paths[0].parent.iterdir()] == [paths[0].name]  # no partial file left
    finally:
        remove_images(engine, [ref])


def test_threads_waiting_for_a_save_that_failed_fail_at_once_and_say_so(engine, tmp_path):
    """The thread that saves meets an error (here the image is not on the engine): the others
    do not save again one after another, each failing the same way; they fail at once, saying
    the save failed for another host, with the first error as its cause."""
    from envctl.errors import FetchError

    ref = f"envctl-it/saved-once-missing:{uuid.uuid4().hex[:8]}"
    client, cache = CountingClient(engine), Cache(tmp_path / "cache")
    meet = threading.Barrier(3)

    def save():
        meet.wait()
        try:
            _saved(client, ref, "sha256:" + "0" * 64, cache, None)
        except Exception as exc:  # noqa: BLE001  (what each host's thread meets)
            return exc
        return None

    with ThreadPoolExecutor(max_workers=3) as pool:
        errors = [f.result() for f in [pool.submit(save) for _ in range(3)]]
    assert client.images.gets == 1
    first = [e for e in errors if not isinstance(e, FetchError)]
    waited = [e for e in errors if isinstance(e, FetchError)]
    assert len(first) == 1 and len(waited) == 2, errors
    for error in waited:
        assert error.message.startswith(f"image {ref}: its docker save on this machine failed, for another host of "
                                         "this up: "), error.message
        assert error.__cause__ is first[0]
    assert [p.name for p in (tmp_path / "cache" / "pulled").iterdir()] == []  # no partial file left
