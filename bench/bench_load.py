"""Loading a 1 GiB image tarball through `envctl up` against `docker load -i` of the same file,
alternating, same run. Prints the median times, the ratio (aim <= 1.05) and envctl's peak
resident memory (aim: under 150 MiB, flat whatever the tarball size).

    .venv/bin/python bench/bench_load.py [size_mib] [runs]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from common import ENVCTL, bench_env, busybox_rootfs, median, peak_rss_mib, run

IMAGE = "envctl-bench/big:1"


def main(size_mib: int, runs: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="envctl-bench-", dir="/var/tmp"))
    env = bench_env(base)
    rootfs = busybox_rootfs(extra_file_bytes=size_mib << 20)  # random bytes: no compression shortcut
    run(["docker", "import", str(rootfs), IMAGE])
    rootfs.unlink()
    tarball = base / "big.tar"
    run(["docker", "save", "-o", str(tarball), IMAGE])
    manifest = base / "load" / "manifest.yaml"
    manifest.parent.mkdir()
    manifest.write_text(f"""\
name: bench-load
description: loads a {size_mib} MiB image tarball
device: {{kind: cpu}}
image: {{ref: {IMAGE}, tarball: {{source: {tarball}}}}}
""")
    ours, theirs, peaks = [], [], []
    try:
        for _ in range(runs):
            run(ENVCTL + ["down", "bench-load"], env=env) if _ else None
            run(["docker", "rmi", "-f", IMAGE])
            seconds, _rss = peak_rss_mib(["docker", "load", "-i", str(tarball)])
            theirs.append(seconds)
            run(["docker", "rmi", "-f", IMAGE])
            seconds, rss = peak_rss_mib(ENVCTL + ["up", str(manifest)], env=env)
            ours.append(seconds)
            peaks.append(rss)
        size = tarball.stat().st_size / (1 << 20)
        print(f"tarball: {size:.0f} MiB, {runs} runs each, alternating")
        print(f"docker load -i:  median {median(theirs):6.2f} s")
        print(f"envctl up:       median {median(ours):6.2f} s (includes reading the tarball's identity and creating the container)")
        print(f"ratio envctl / docker load: {median(ours) / median(theirs):.3f}  (aim <= 1.05)")
        print(f"envctl peak resident memory: {max(peaks):.0f} MiB  (aim < 150 MiB)")
    finally:
        subprocess_quiet(ENVCTL + ["down", "bench-load", "--purge"], env)
        subprocess_quiet(["docker", "rmi", "-f", IMAGE], None)
        shutil.rmtree(base, ignore_errors=True)


def subprocess_quiet(argv, env) -> None:
    import subprocess

    subprocess.run(argv, capture_output=True, env=env)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
