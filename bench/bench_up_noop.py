"""`envctl up` of an environment that is already up, against `docker-compose up -d` of the
equivalent one-service file that is already up. Prints both medians and the ratio (aim <= 0.5).

    .venv/bin/python bench/bench_up_noop.py [runs]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from common import ENVCTL, bench_env, busybox_rootfs, median, run, timed

IMAGE = "envctl-bench/busybox:1"


def main(runs: int) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        raise SystemExit("docker-compose is needed (Debian: apt-get install docker-compose)")
    base = Path(tempfile.mkdtemp(prefix="envctl-bench-"))
    env = bench_env(base)
    run(["docker", "import", str(busybox_rootfs()), IMAGE])
    manifest = base / "noop" / "manifest.yaml"
    manifest.parent.mkdir()
    manifest.write_text(f"""\
name: bench-noop
description: one busybox container, already up
device: {{kind: cpu}}
image: {{ref: {IMAGE}}}
container:
  shm_size: 64m
  env: {{A: "1"}}
""")
    (base / "docker-compose.yml").write_text(f"""\
version: "2.4"
services:
  noop:
    image: {IMAGE}
    command: ["sleep", "infinity"]
    shm_size: 64m
    environment: {{A: "1"}}
""")
    try:
        timed(ENVCTL + ["up", str(manifest)], env)
        timed([compose, "-p", "envctlbench", "-f", str(base / "docker-compose.yml"), "up", "-d"])
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(timed(ENVCTL + ["up", str(manifest)], env))
            theirs.append(timed([compose, "-p", "envctlbench", "-f", str(base / "docker-compose.yml"), "up", "-d"]))
        print(f"envctl up (already up):          median {median(ours) * 1000:7.0f} ms over {runs} runs")
        print(f"docker-compose up -d (already up): median {median(theirs) * 1000:7.0f} ms over {runs} runs")
        print(f"ratio envctl / docker-compose:    {median(ours) / median(theirs):.2f}  (aim <= 0.5)")
    finally:
        run(ENVCTL + ["down", "bench-noop", "--purge"], env=env)
        run([compose, "-p", "envctlbench", "-f", str(base / "docker-compose.yml"), "down"])
        run(["docker", "rmi", "-f", IMAGE])
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
