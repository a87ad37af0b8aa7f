"""Shared pieces of the benchmarks: building test images without a registry, timing commands."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENVCTL = [sys.executable, "-m", "envctl"]


def busybox_rootfs(extra_file_bytes: int = 0, random: bool = True, path: Path | None = None,
                   source=None) -> Path:
    """A busybox rootfs tar (optionally with one big file, payload.bin) written to `path` (a
    temporary file by default). The big file's bytes come from `source` (a readable file object)
    when given, else from /dev/urandom (`random`) or /dev/zero."""
    path = path or Path("/tmp/envctl-bench-rootfs.tar")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(path, "w") as archive:
        for directory in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            archive.addfile(info)
        archive.add("/bin/busybox", "bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                archive.addfile(link)
        if extra_file_bytes:
            info = tarfile.TarInfo("payload.bin")
            info.size = extra_file_bytes
            own = source is None
            source = open("/dev/urandom" if random else "/dev/zero", "rb") if own else source
            archive.addfile(info, source)
            if own:
                source.close()
    return path


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kwargs)


def timed(argv: list[str], env=None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def peak_rss_mib(argv: list[str], env=None) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one command run in a fresh child process."""
    wrapper = [sys.executable, "-c",
               "import resource, subprocess, sys, time; t = time.perf_counter();"
               " r = subprocess.run(sys.argv[1:]); e = time.perf_counter() - t;"
               " print(e, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(r.returncode)",
               *argv]
    done = subprocess.run(wrapper, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    seconds, rss = done.stdout.split()[-2:]
    return float(seconds), float(rss)


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_env(base: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(ENVCTL_CACHE=str(base / "cache"), ENVCTL_WORKSPACE=str(base / "ws"), HOME=str(base / "home"))
    return env
