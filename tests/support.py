"""Constants the test packages share (imported by name; conftest modules are not importable
unambiguously when there are several)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# One tag and one name prefix per test session (its pid): two sessions on one engine (a developer's
# run beside CI's, or two checkouts) never retag or remove each other's image and containers.
SESSION = f"s{os.getpid()}"
IMAGE = f"envctl-it/busybox:{SESSION}"  # the integration tests' locally built image


def moves_mtime_once(path: Path):
    """A progress callback `advance(n)` that moves `path`'s mtime forward at its first call: the
    file is written while envctl reads it (a download or copy still under way)."""
    moved = []

    def advance(n: int) -> None:
        if not moved:
            moved.append(n)
            os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))

    return advance
