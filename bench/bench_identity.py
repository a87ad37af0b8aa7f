"""Checking that a multi-GB gzipped image tarball's image is already loaded: the first check
reads the whole tarball; the second uses the remembered identity (aim: under 50 ms).

    .venv/bin/python bench/bench_identity.py [size_mib]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import docker

from common import REPO, busybox_rootfs, run

sys.path.insert(0, str(REPO))
from envctl.images import IdentityCache, identify  # noqa: E402

IMAGE = "envctl-bench/identity:1"


def main(size_mib: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="envctl-bench-", dir="/var/tmp"))
    rootfs = busybox_rootfs(extra_file_bytes=size_mib << 20, random=False)
    run(["docker", "import", str(rootfs), IMAGE])
    rootfs.unlink()
    tarball = base / "image.tar"
    run(["docker", "save", "-o", str(tarball), IMAGE])
    run(["gzip", "-1", str(tarball)])
    tarball = base / "image.tar.gz"
    client = docker.from_env()
    cache = IdentityCache(base / "tarballs.json")
    try:
        def check() -> float:
            start = time.perf_counter()
            identity = identify(tarball, cache, need_sha256=False)
            assert client.images.get(IMAGE).id == identity.image_id
            return time.perf_counter() - start

        first = check()
        second = [check() for _ in range(5)]
        print(f"tarball: {tarball.stat().st_size / (1 << 20):.0f} MiB gzipped, {size_mib} MiB of image data")
        print(f"first check (reads the whole tarball): {first * 1000:8.0f} ms")
        print(f"second check (remembered identity):    {min(second) * 1000:8.1f} ms best, {max(second) * 1000:.1f} ms worst  (aim < 50 ms)")
    finally:
        run(["docker", "rmi", "-f", IMAGE])
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3072)
