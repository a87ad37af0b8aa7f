"""The call log: one JSON line per call of a stand-in program, appended to a file in the
environment's workspace (/envctl, mounted from the host), where the tests read it.

A line holds what a test needs to tell whether a manifest ran the tutorial's command: the
program, its argv, the working directory, the environment, and for every argument that looks
like a path whether it was a file, a directory or missing at that moment.
"""

from __future__ import annotations

import fcntl
import json
import os

LOG = os.environ.get("STANDIN_LOG", "/envctl/standin-calls.jsonl")
# Variables that differ on every run, or that only echo the working directory.
NOISE = {"HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "LS_COLORS"}
PATH_SUFFIXES = (".py", ".sh", ".json", ".jsonl", ".yaml", ".yml", ".txt", ".whl", ".bin", ".ckpt", ".model",
                 ".gz", ".toml", ".cfg")


def environment() -> dict[str, str]:
    # STANDIN_* variables are the stand-ins' own bookkeeping (worker_of is recorded as a field).
    return {k: v for k, v in os.environ.items() if k not in NOISE and not k.startswith("STANDIN_")}


def _looks_like_path(text: str) -> bool:
    if not text or any(c.isspace() for c in text) or "://" in text:
        return False
    return text in (".", "..") or "/" in text or text.endswith(PATH_SUFFIXES)


def paths(args: list[str]) -> dict[str, str]:
    """file | dir | missing for each path-like argument (or --option=value), relative to cwd."""
    found = {}
    for arg in args:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if arg.startswith("-") and "=" not in arg:
            continue
        if _looks_like_path(value):
            found[value] = "dir" if os.path.isdir(value) else "file" if os.path.exists(value) else "missing"
    return found


def record(program: str, argv: list[str], **extra) -> int | None:
    """Append the call; return its line number in the log (None when there is no workspace,
    as while an image is being built)."""
    if not os.path.isdir(os.path.dirname(LOG)):
        return None
    entry = {"program": program, "argv": list(argv), "cwd": os.getcwd(), "env": environment(),
             "paths": paths(list(argv[1:])), **extra}
    if os.environ.get("STANDIN_WORKER_OF"):
        entry["worker_of"] = int(os.environ["STANDIN_WORKER_OF"])
    with open(LOG, "a+", encoding="utf-8") as handle:
        # Launchers' workers and web.sh's services write at once: one writer at a time, and the
        # line number is counted under the same lock.
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        entry["seq"] = sum(1 for _ in handle)
        handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        handle.flush()
        return entry["seq"]
