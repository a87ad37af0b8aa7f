"""`envctl up` of an environment that is already up, against `docker compose up -d` (Compose v2,
the Go plugin users run today) of the equivalent one-service file that is already up, and against
`docker-compose` 1.29 (Python) where it is installed; and `envctl status` against `docker compose
ps` of the same project. Prints the medians and the ratios (issue 14's aim: envctl within 2x
Compose v2). envctl runs as users run it: its quick paths answer (envctl/quick_up.py,
envctl/quick_status.py); `--full` adds the full paths (ENVCTL_NO_QUICK=1) to the same rounds.

    sh bench/get-compose-v2.sh       # once: Compose v2 under bench/.tools, installed nowhere
    .venv/bin/python bench/bench_up_noop.py [runs] [--full]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ENVCTL, REPO, bench_env, busybox_rootfs, median, run, timed

IMAGE = "envctl-bench/busybox:1"


def composes() -> list[tuple[str, list[str], dict]]:
    """(label, command, environment) of each Compose to compare with: v2 as the docker CLI plugin
    (bench/get-compose-v2.sh), then a docker-compose on PATH if it is another one (v1)."""
    found = []
    config = Path(os.environ.get("TOOLS", REPO / "bench" / ".tools")) / "docker-config"
    if (config / "cli-plugins" / "docker-compose").exists():
        found.append(("docker compose (v2)", ["docker", "compose"], dict(os.environ, DOCKER_CONFIG=str(config))))
    else:
        raise SystemExit("Compose v2 is needed: sh bench/get-compose-v2.sh")
    v1 = shutil.which("docker-compose")
    if v1 is not None:
        said = subprocess.run([v1, "version", "--short"], capture_output=True, text=True).stdout.strip()
        if said.startswith("1."):
            found.append((f"docker-compose {said}", [v1], dict(os.environ)))
    return found


def main(runs: int, full: bool = False) -> None:
    tools = composes()
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
    # One project per Compose: v1 and v2 name their containers differently (noop_1, noop-1).
    project = {label: ["-p", f"envctlbench{i}", "-f", str(base / "docker-compose.yml")]
               for i, (label, _, _) in enumerate(tools)}
    try:
        timed(ENVCTL + ["up", str(manifest)], env)  # creates it
        timed(ENVCTL + ["up", str(manifest)], env)  # finds it up: the no-op the quick path answers from now on
        for label, compose, compose_env in tools:
            timed(compose + project[label] + ["up", "-d"], compose_env)
        full_env = dict(env, ENVCTL_NO_QUICK="1")
        # (label, command, environment, compared with): every case once per round, in turn.
        cases = [("envctl up (already up)", ENVCTL + ["up", str(manifest)], env, "up"),
                 ("envctl status", ENVCTL + ["status"], env, "ps")]
        if full:
            cases += [("envctl up, full path", ENVCTL + ["up", str(manifest)], full_env, "up"),
                      ("envctl status, full path", ENVCTL + ["status"], full_env, "ps")]
        for label, compose, compose_env in tools:
            cases += [(f"{label} up -d (already up)", compose + project[label] + ["up", "-d"], compose_env, None),
                      (f"{label} ps", compose + project[label] + ["ps"], compose_env, None)]
        times = {label: [] for label, _, _, _ in cases}
        for _ in range(runs):  # interleaved: a busy moment weighs on every tool alike
            for label, argv, case_env, _ in cases:
                times[label].append(timed(argv, case_env))
        for label, _, _, _ in cases:
            print(f"{label:40} median {median(times[label]) * 1000:7.0f} ms over {runs} runs")
        for label, _, _, verb in cases:
            for tool, _, _ in tools if verb else ():
                theirs = f"{tool} up -d (already up)" if verb == "up" else f"{tool} ps"
                aim = "  (aim <= 2.0)" if "v2" in tool else ""
                print(f"ratio {label} / {theirs:30} {median(times[label]) / median(times[theirs]):5.2f}{aim}")
    finally:
        run(ENVCTL + ["down", "bench-noop", "--purge"], env=env)
        for label, compose, compose_env in tools:
            run(compose + project[label] + ["down"], env=compose_env)
        run(["docker", "rmi", "-f", IMAGE])
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if a != "--full"]
    main(int(numbers[0]) if numbers else 10, full="--full" in sys.argv[1:])
