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


def count_docker_py_requests(monkeypatch, keep_version: bool = False) -> list[str]:
    """"METHOD /path" of each request docker-py sends from now on (every one goes through
    requests' HTTPAdapter.send, which its unix-socket adapter derives from), the query left out,
    and the API version prefix too unless `keep_version`. The requests are sent as ever."""
    import re

    import requests.adapters

    calls: list[str] = []
    original = requests.adapters.HTTPAdapter.send

    def send(self, request, *args, **kwargs):
        path = request.path_url.split("?")[0]
        calls.append(f"{request.method} {path if keep_version else re.sub(r'^/v[0-9.]+/', '/', path)}")
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return calls
