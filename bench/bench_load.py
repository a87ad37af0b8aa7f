"""`envctl up` loading an image tarball against `docker load -i` of the same file, on both engines
here (Docker 20.10's classic store at /var/run/docker.sock, Docker 28 on the containerd image
store at /run/envctl-test-containerd/docker.sock), plain and compressed, interleaved.

Each round runs every case once, `docker load` and `envctl up` (and --baseline) taking turns
at going first, with the image removed before each and envctl's identity cache emptied (the first `up` of a
tarball: nothing remembered about it). The manifest pins the tarball's sha256, as `envctl lock`
writes it, so envctl verifies it as it loads. Prints per case the median seconds of each, the
ratio (aim <= 1.05) and envctl's peak resident memory (aim < 150 MiB, flat whatever the size).

The payload is, per MiB, 512 KiB of random bytes then 512 KiB of zeros: a compressor has work
to do and reaches about 2:1 (random bytes alone would be stored, not compressed). zstd is compared with `docker load -i`
on Docker 28 and with `zstd -dc FILE | docker load` on Docker 20.10, which refuses zstd.

    .venv/bin/python bench/bench_load.py [--sizes 256,1024] [--runs 3]
        [--engines classic,containerd] [--compressions none,gzip,zstd] [--no-sha256] [--command up|image]
        [--baseline DIR] [--envctl DIR]

--command image measures `envctl image` (the image step alone) instead of `up`: like for like
with `docker load -i`. With `up` (the default), each round also times what a user types for the
same result (`docker load -i`, then `docker run -d`: the first container made from a loaded image
waits for the engine to flush the new layer to disk, ~3 s for 1 GiB here, which `docker load`
alone leaves to the user's next command), and a second `up` of the same manifest right after a `down`:
the image is then on the engine and the tarball remembered, so that `up` does everything but
the load (Python, the plan, creating and starting the container). The whole `up` is compared
with `docker load`, and so is the load's share: the first `up` less the second.

--baseline DIR adds another envctl to every round, the `envctl` package in DIR (on PYTHONPATH;
e.g. `git archive COMMIT envctl | tar -x -C DIR`), for before/after figures taken in the same
rounds; --envctl DIR runs the package in DIR as the envctl measured (a snapshot of the tree).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENVCTL, bench_env, busybox_rootfs, median, peak_rss_mib, run

IMAGE = "envctl-bench/big:1"
ENGINES = {"classic": "unix:///var/run/docker.sock", "containerd": "unix:///run/envctl-test-containerd/docker.sock"}
COMPRESS = {"none": None, "gzip": ["gzip", "-c", "-6"], "zstd": ["zstd", "-c", "-q", "-3", "-T2"]}
SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}


class MixedPayload:
    """Per MiB: 512 KiB of random bytes, then 512 KiB of zeros."""

    def __init__(self, size: int):
        self.left = size
        self.pending = b""

    def read(self, size: int) -> bytes:
        while len(self.pending) < min(size, self.left):
            self.pending += os.urandom(512 << 10) + bytes(512 << 10)
        taken, self.pending = self.pending[:min(size, self.left)], self.pending[min(size, self.left):]
        self.left -= len(taken)
        return taken


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def tarballs(base: Path, size_mib: int, compressions: list[str]) -> dict:
    """{compression: path} of one image saved by Docker 20.10, compressed as asked."""
    root = base / "rootfs.tar"
    busybox_rootfs(size_mib << 20, path=root, source=MixedPayload(size_mib << 20))
    run(["docker", "import", str(root), IMAGE], env=_env("classic"))
    root.unlink()
    plain = base / f"big-{size_mib}.tar"
    run(["docker", "save", "-o", str(plain), IMAGE], env=_env("classic"))
    out = {}
    for compression in compressions:
        if COMPRESS[compression] is None:
            out[compression] = plain
            continue
        packed = base / f"big-{size_mib}.tar{SUFFIX[compression]}"
        with open(packed, "wb") as handle:
            subprocess.run([*COMPRESS[compression], str(plain)], stdout=handle, check=True)
        out[compression] = packed
    if "none" not in compressions:
        plain.unlink()
    return out


def _env(engine: str, base: dict | None = None) -> dict:
    env = dict(base if base is not None else os.environ)
    env["DOCKER_HOST"] = ENGINES[engine]
    return env


def docker_load(engine: str, compression: str, tarball: Path) -> list[str]:
    if engine == "classic" and compression == "zstd":  # Docker 20.10 refuses zstd: decompressed by the CLI a user has
        return ["sh", "-c", 'zstd -dc "$1" | docker load', "sh", str(tarball)]
    return ["docker", "load", "-i", str(tarball)]


def by_hand(engine: str, compression: str, tarball: Path, container: str) -> list[str]:
    """What a user types for what `envctl up` of these manifests does: the load, then a container
    started from the image. The engine writes a loaded layer to the page cache and flushes it when
    the first container is created from it (overlay2 and the containerd snapshotter both: ~3 s
    for 1 GiB here, nothing the second time), so `docker load` alone leaves out work that the
    user's next `docker run` pays and `up` pays inside its own time."""
    load = docker_load(engine, compression, tarball)
    line = 'zstd -dc "$1" | docker load' if load[0] == "sh" else 'docker load -i "$1"'
    return ["sh", "-c", line + ' >/dev/null && docker run -d --name "$2" "$3" sleep 3600 >/dev/null',
            "sh", str(tarball), container, IMAGE]


def remove_image(engine: str) -> None:
    subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True, env=_env(engine))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,1024", help="payload sizes in MiB, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="rounds (each runs every case once)")
    parser.add_argument("--engines", default="classic,containerd")
    parser.add_argument("--compressions", default="none,gzip,zstd")
    parser.add_argument("--no-sha256", action="store_true", help="do not pin the tarball's sha256 in the manifest")
    parser.add_argument("--command", choices=("up", "image"), default="up",
                        help="envctl up (the image, then the container), or envctl image (the image only: like for like with docker load)")
    parser.add_argument("--baseline", type=Path, help="also run the envctl package found in this directory")
    parser.add_argument("--envctl", type=Path, help="run the envctl package in this directory, not the installed one "
                                                    "(a snapshot, so that edits made meanwhile do not change the run)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = args.engines.split(",")
    compressions = args.compressions.split(",")

    base = Path(tempfile.mkdtemp(prefix="envctl-bench-", dir="/var/tmp"))
    env = bench_env(base)
    # `python -m envctl` finds the package in the working directory first: from here, the
    # installed one, or the --baseline one through PYTHONPATH.
    os.chdir(base)
    cases = []  # (engine, compression, size, tarball, manifest)
    try:
        for size in sizes:
            packed = tarballs(base, size, compressions)
            remove_image("classic")
            for compression, tarball in packed.items():
                pin = "" if args.no_sha256 else f", sha256: {sha256_of(tarball)}"
                for engine in engines:
                    name = f"bench-load-{engine}-{compression}-{size}"
                    manifest = base / name / "manifest.yaml"
                    manifest.parent.mkdir()
                    manifest.write_text(f"name: {name}\ndescription: loads a {size} MiB image tarball\n"
                                        f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarball}{pin}}}}}\n")
                    cases.append((engine, compression, size, tarball, manifest))
        print(f"{len(cases)} cases, {args.runs} rounds, interleaved (every case once per round, "
              f"taking turns at going first); sha256 {'not pinned' if args.no_sha256 else 'pinned'}; "
              f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
        up = args.command == "up"
        contenders = ["docker"] + (["by hand"] if up else []) + ["envctl"] + (["baseline"] if args.baseline else [])
        times = {case[:3]: {who: [] for who in contenders} | {"peak": [], "baseline peak": [], "present": [], "baseline present": []}
                 for case in cases}
        identities = base / "cache" / "state" / "tarballs.json"
        for round_ in range(args.runs):
            for engine, compression, size, tarball, manifest in cases:
                got = times[(engine, compression, size)]
                shift = round_ % len(contenders)  # each goes first in turn
                for who in contenders[shift:] + contenders[:shift]:
                    remove_image(engine)
                    # The last run's gigabyte of layers (written, then removed) flushed to disk
                    # before this one starts: else whoever runs next shares the disk with that
                    # writeback (rounds of one case varied by 40 % without this).
                    os.sync()
                    if who == "docker":
                        seconds, _rss = peak_rss_mib(docker_load(engine, compression, tarball), env=_env(engine))
                    elif who == "by hand":
                        container = f"envctl-bench-by-hand-{os.getpid()}"
                        seconds, _rss = peak_rss_mib(by_hand(engine, compression, tarball, container), env=_env(engine))
                        subprocess.run(["docker", "rm", "-f", container], capture_output=True, env=_env(engine))
                    else:
                        identities.unlink(missing_ok=True)  # the first up of this tarball
                        package = args.baseline if who == "baseline" else args.envctl
                        which = _env(engine, env) | ({"PYTHONPATH": str(package)} if package else {})
                        seconds, rss = peak_rss_mib(ENVCTL + [args.command, str(manifest)], env=which)
                        got["peak" if who == "envctl" else "baseline peak"].append(rss)
                        if args.command == "up":  # the same up with the image there: what the load adds is the difference
                            run(ENVCTL + ["down", manifest.parent.name], env=which)
                            again, _rss = peak_rss_mib(ENVCTL + ["up", str(manifest)], env=which)
                            got["present" if who == "envctl" else "baseline present"].append(again)
                        subprocess.run(ENVCTL + ["down", manifest.parent.name, "--purge"], capture_output=True, env=which)
                    got[who].append(seconds)
                print(f"  round {round_ + 1} {engine:10} {compression:4} {size:5} MiB: "
                      + "  ".join(f"{who} {got[who][-1]:6.2f} s" for who in contenders)
                      + ("".join(f"  {who} (image there) {got[key][-1]:5.2f} s" for who, key in
                                 (("envctl", "present"), ("baseline", "baseline present")) if got[key]))
                      + f"  ({time.strftime('%H:%M:%S')}, load {os.getloadavg()[0]:.2f})", flush=True)

        def columns(who: str, present: str, peak: str, theirs: float) -> str:
            mine = median(got[who])
            text = f" {mine:9.2f} {mine / theirs:6.3f}"
            if up:
                text += f" {mine / median(got['by hand']):7.3f}"
                # the load's share: the median of each round's up less its up with the image there
                share = median([a - b for a, b in zip(got[who], got[present])])
                text += f" {median(got[present]):9.2f} {share:9.2f} {share / theirs:6.3f}"
            return text + f" {max(got[peak]):9.0f}"

        heading = f" {'s':>9} {'ratio':>6}" + (f" {'/ hand':>7} {'there s':>9} {'load s':>9} {'ratio':>6}" if up else "") + f" {'peak MiB':>9}"
        print(f"\n{'':41} {'envctl ' + args.command:^{len(heading)}}" + (f" {'before (--baseline)':^{len(heading)}}" if args.baseline else ""))
        print(f"{'engine':10} {'compr':5} {'size':>9} {'tarball':>8} {'docker s':>9}" + (f" {'hand s':>9}" if up else "") + heading + (heading if args.baseline else "")
              + "   (aim: ratio <= 1.05, peak < 150 MiB)")
        for engine, compression, size, tarball, _ in cases:
            got = times[(engine, compression, size)]
            theirs = median(got["docker"])
            line = (f"{engine:10} {compression:5} {size:5} MiB {tarball.stat().st_size / (1 << 20):5.0f} MiB {theirs:9.2f}"
                    + (f" {median(got['by hand']):9.2f}" if up else "") + columns("envctl", "present", "peak", theirs))
            if args.baseline:
                line += columns("baseline", "baseline present", "baseline peak", theirs)
            print(line)
        print(f"envctl {args.command} (s, ratio) includes starting Python and reading the tarball's identity"
              + (", and creating and starting the container" if up else "") + "; docker load does neither.")
        if up:
            print("hand s: docker load -i, then docker run -d of the image (what a user types for the same result); "
                  "/ hand: envctl up's time over it. The first container made from a loaded image waits for the engine "
                  "to flush the layer to disk, which docker load alone does not.")
            print("there s: the same up right after a down, the image on the engine and the tarball remembered (Python, "
                  "the plan, the container); load s: up less that, per round (the identity read, the load, the checks "
                  "after it, and the engine's flush of the new layer at the first create), and its ratio to docker load.")
        print("Medians; the machine may be shared: see the load average printed with each round.")
    finally:
        for engine, *_rest, manifest in cases:
            subprocess.run(ENVCTL + ["down", manifest.parent.name, "--purge"], capture_output=True, env=_env(engine, env))
        for engine in ENGINES:
            remove_image(engine)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
