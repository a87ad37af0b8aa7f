"""The cache on a filesystem that refuses writes: read-only (a read-only bind mount), full (a
1 MiB tmpfs that fills in the middle of a download from a loopback server), not permitted
(another user's directory, written without root's override of file modes), and a cache path below a
file. Each run goes through the command line, as a user's does, and must end with the
documented exit code, the path and a hint on stderr, no traceback and no "internal error"; a
download stopped by a full disk is kept and resumed (a Range request for the rest) once there
is room. Needs root (mounts), as the rest of the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from servers.fixtures import file_server  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = bytes(range(256)) * (3 * 4096)  # 3 MiB: more than the tmpfs holds


def manifest(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("name: faults\ndescription: x\ndevice: {kind: cpu}\nimage: {ref: x}\n"
                    f"artifacts:\n  weights: {{source: '{url}'}}\n")
    return path


def envctl(cache: Path, *args: str, permissions_apply: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(ENVCTL_CACHE=str(cache), HOME=str(cache.parent / "home"), PYTHONDONTWRITEBYTECODE="1")
    argv = [sys.executable, "-m", "envctl", *args]
    if permissions_apply:
        # root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH is held to file modes as any user
        # is (capabilities(7)), while it can still run the interpreter under /root
        argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def assert_explained(done: subprocess.CompletedProcess, exit_code: int, *words: str) -> None:
    assert done.returncode == exit_code, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "hint:" in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.fixture
def mounts():
    """Mount points to unmount after the test, innermost last."""
    made: list[Path] = []
    yield made
    for point in reversed(made):
        subprocess.run(["umount", "-l", str(point)], check=False)


def mount(argv: list[str], point: Path, made: list[Path]) -> None:
    subprocess.run(argv, check=True, capture_output=True)
    made.append(point)


def test_cache_on_a_read_only_filesystem(tmp_path, file_server, mounts):  # noqa: F811
    file_server.put("/w.bin", b"weights" * 100)
    writable, cache = tmp_path / "writable", tmp_path / "cache"
    writable.mkdir()
    cache.mkdir()
    mount(["mount", "--bind", str(writable), str(cache)], cache, mounts)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(cache)], check=True)
    done = envctl(cache, "fetch", str(manifest(tmp_path, file_server.url_for("/w.bin"))))
    assert_explained(done, 6, str(cache), "read-only filesystem", "ENVCTL_CACHE")


def test_a_full_cache_keeps_the_partial_download_and_resumes_it(tmp_path, mounts):
    from servers.http_files import FileServer

    # Chunked: no size is announced, so no free-space check can refuse before the disk fills.
    with FileServer(files={"/big.bin": PAYLOAD}, chunked=True) as server:
        cache = tmp_path / "cache"
        cache.mkdir()
        mount(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(cache)], cache, mounts)
        path = manifest(tmp_path, server.url_for("/big.bin"))
        done = envctl(cache, "fetch", str(path))
        assert_explained(done, 6, str(cache), "full filesystem", "kept")
        partials = [p for p in (cache / "partial").glob("*.part") if p.stat().st_size > 0]
        assert len(partials) == 1, list((cache / "partial").iterdir())
        kept = partials[0].stat().st_size
        assert partials[0].read_bytes() == PAYLOAD[:kept]  # what was written is a true prefix
        subprocess.run(["mount", "-o", "remount,size=16m", str(cache)], check=True)
        server.reset_counters()
        again = envctl(cache, "fetch", str(path))
        assert again.returncode == 0, again.stderr
        assert f"bytes={kept}-" in server.ranges_requested("/big.bin")
        blobs = list((cache / "blobs" / "sha256").iterdir())
        assert [b.read_bytes() == PAYLOAD for b in blobs] == [True]


def test_a_cache_this_user_may_not_write(tmp_path, file_server):  # noqa: F811
    file_server.put("/w.bin", b"weights" * 100)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    os.chown(cache, 65534, 65534)  # another user's, as a shared directory would be
    done = envctl(cache, "fetch", str(manifest(tmp_path, file_server.url_for("/w.bin"))), permissions_apply=True)
    assert_explained(done, 6, str(cache), "not writable by this user", "chown")


def test_a_cache_path_below_a_file(tmp_path, file_server):  # noqa: F811
    file_server.put("/w.bin", b"weights" * 100)
    (tmp_path / "afile").write_text("not a directory")
    cache = tmp_path / "afile" / "cache"
    done = envctl(cache, "fetch", str(manifest(tmp_path, file_server.url_for("/w.bin"))))
    assert_explained(done, 6, str(tmp_path / "afile"), "a file where a directory is needed")


def test_a_lock_file_beside_a_manifest_on_a_read_only_filesystem(tmp_path, file_server, mounts):  # noqa: F811
    """The atomic writer's failure reaches the command line naming the file it was writing."""
    file_server.put("/w.bin", b"weights" * 100)
    path = manifest(tmp_path, file_server.url_for("/w.bin"))
    mount(["mount", "--bind", str(path.parent), str(path.parent)], path.parent, mounts)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(path.parent)], check=True)
    cache = tmp_path / "cache"
    done = envctl(cache, "lock", str(path))
    assert_explained(done, 5, str(path.parent / "manifest.lock"), "read-only filesystem")
