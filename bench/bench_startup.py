"""Start-up of whole processes: `envctl version`, `envctl --help`, `envctl status --help`,
`envctl plan NAME --help` and a shell completion, against `python -c pass` in the same venv
(the floor: Python itself) and the Go tools users compare envctl with, `docker --help` and
`docker compose version` (Compose v2, from bench/get-compose-v2.sh). Prints medians and ratios
(aim: envctl --help, version and completion within 60 ms). With --imports, also where each
envctl case's import time goes (`python -X importtime`, summed by top-level package).

    sh bench/get-compose-v2.sh                              # once: Compose v2 under bench/.tools
    .venv/bin/python bench/bench_startup.py [runs] [--imports]
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import REPO, median, timed

AIM_MS = 60
COMPLETE = {"_ENVCTL_COMPLETE": "complete_bash", "COMP_WORDS": "envctl st", "COMP_CWORD": "1"}


def envctl_argv() -> list[str]:
    """The console script users run (pyproject [project.scripts]), else `python -m envctl`."""
    script = Path(sys.executable).with_name("envctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "envctl"]


def compose_v2() -> Path | None:
    """bench/get-compose-v2.sh's docker CLI configuration directory (with the plugin), if fetched."""
    config = Path(os.environ.get("TOOLS", REPO / "bench" / ".tools")) / "docker-config"
    return config if (config / "cli-plugins" / "docker-compose").exists() else None


def cases() -> list[tuple[str, list[str], dict]]:
    envctl = envctl_argv()
    env = dict(os.environ)
    found = [("python -c pass", [sys.executable, "-c", "pass"], env),
             ("envctl version", envctl + ["version"], env),
             ("envctl --help", envctl + ["--help"], env),
             ("envctl status --help", envctl + ["status", "--help"], env),
             ("envctl plan NAME --help", envctl + ["plan", "chatglm-tiny-cpu", "--help"], env),
             ("envctl completion (bash: st<TAB>)", envctl, dict(env, **COMPLETE))]
    if shutil.which("docker"):
        found.append(("docker --help", ["docker", "--help"], env))
        config = compose_v2()
        if config is not None:
            found.append(("docker compose version (v2)", ["docker", "compose", "version"],
                          dict(env, DOCKER_CONFIG=str(config))))
        else:
            print("note: no Compose v2 here; run `sh bench/get-compose-v2.sh` for the docker compose column",
                  file=sys.stderr)
    return found


def imports_by_package(argv: list[str], env: dict) -> list[tuple[str, float]]:
    """(top-level package, ms of its own import time) from `python -X importtime`, largest first;
    envctl's modules each on their own line."""
    script = argv[0] if argv[0] != sys.executable else None
    command = [sys.executable, "-X", "importtime", *([script] if script else []), *argv[1 if script else 1:]]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    spent: collections.Counter = collections.Counter()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line.split(":", 1)[1].split("|")
        name = name.strip()
        key = name if name.startswith("envctl.") else name.split(".")[0]
        spent[key] += int(own) / 1000
    return spent.most_common()


def main(runs: int, show_imports: bool) -> None:
    measured = cases()
    for _, argv, env in measured:  # warm the page cache and the .pyc files
        timed(argv, env)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in measured}
    for _ in range(runs):  # interleaved, so that a busy moment weighs on every case alike
        for name, argv, env in measured:
            samples[name].append(timed(argv, env))
    medians = {name: median(values) * 1000 for name, values in samples.items()}
    floor = medians["python -c pass"]
    compose = medians.get("docker compose version (v2)")
    print(f"{'':36} {'median':>9}  {'/ python':>8}  {'/ compose v2':>12}   ({runs} runs each)")
    for name, ms in medians.items():
        versus = f"{ms / compose:12.2f}" if compose else f"{'-':>12}"
        aim = f"   aim <= {AIM_MS} ms" if name in ("envctl version", "envctl --help") or "completion" in name else ""
        print(f"{name:36} {ms:7.1f} ms  {ms / floor:8.2f}  {versus}{aim}")
    if show_imports:
        for name, argv, env in measured:
            if name.startswith("envctl"):
                top = imports_by_package(argv, env)
                total = sum(ms for _, ms in top)
                print(f"\n{name}: {total:.1f} ms of imports (python -X importtime, own time by package)")
                for package, ms in top[:12]:
                    print(f"  {ms:7.1f} ms  {package}")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(arguments[0]) if arguments else 20, "--imports" in sys.argv[1:])
