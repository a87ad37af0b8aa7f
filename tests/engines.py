"""The Docker engines the integration tests run against: the machine's own (Debian 12's docker.io
20.10, the classic image store, where an image ID is the config digest) and a current Docker with
the containerd image store (where an image ID is the manifest digest), started beside it by
tests/ensure-containerd-engine.sh. A test reaches an engine through its DOCKER_HOST, as users do.

Fixtures (tests/integration/conftest.py): `engine_under_test` is an `EngineUnderTest`, `engine`
its docker-py client; a test or module marked `both_engines` runs once per engine (ids
`classic-20.10`, `containerd-28`, from the installed packages), every other test on the classic
engine only."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

CLASSIC_SOCKET = "/var/run/docker.sock"
CONTAINERD_SOCKET = "/run/envctl-test-containerd/docker.sock"  # tests/ensure-containerd-engine.sh
CONTAINERD_ROOTFS = Path("/var/lib/envctl-test-containerd/rootfs")  # the Debian root it runs from
SNAPSHOTTER_DRIVER_TYPE = "io.containerd.snapshotter.v1"  # `docker info`: Storage Driver's driver-type


@dataclass(frozen=True)
class EngineKind:
    store: str  # "classic" | "containerd"
    docker_host: str  # what envctl is given as DOCKER_HOST
    id: str  # pytest id: the store and the packaged Docker version

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class EngineUnderTest:
    kind: EngineKind
    client: docker.DockerClient

    @property
    def store(self) -> str:
        return self.kind.store

    @property
    def docker_host(self) -> str:
        return self.kind.docker_host


def _packaged_docker(admindir: Path | None = None) -> str | None:
    """docker.io's Debian version ("20.10.24+dfsg1", "28.5.2+dfsg4-5") in a dpkg database, or None."""
    argv = ["dpkg-query", "-W", "-f", "${Version}", "docker.io"]
    if admindir is not None:
        argv.insert(1, f"--admindir={admindir}")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _engine_id(store: str, version: str | None, parts: int) -> str:
    match = re.match(r"(?:\d+:)?(\d+(?:\.\d+)*)", version or "")
    return f"{store}-{'.'.join(match.group(1).split('.')[:parts])}" if match else store


CLASSIC = EngineKind("classic", f"unix://{CLASSIC_SOCKET}", _engine_id("classic", _packaged_docker(), 2))
CONTAINERD = EngineKind("containerd", f"unix://{CONTAINERD_SOCKET}",
                        _engine_id("containerd", _packaged_docker(CONTAINERD_ROOTFS / "var/lib/dpkg"), 1))
ENGINE_KINDS = (CLASSIC, CONTAINERD)


def storage_driver_type(client: docker.DockerClient) -> str | None:
    """The Storage Driver's `driver-type` that `docker info` shows (DriverStatus), or None: the
    containerd image store reports "io.containerd.snapshotter.v1"; the classic store (overlay2)
    has no such row."""
    status = dict(tuple(row) for row in client.info().get("DriverStatus") or [] if len(row) == 2)
    return status.get("driver-type")


def connect(kind: EngineKind) -> EngineUnderTest:
    """A client for `kind`'s engine, checked to answer and to use the image store it stands for.
    Fails the test (never skips) when it does not: `make test` sets both engines up."""
    how = "tests/ensure-engine.sh" if kind is CLASSIC else "tests/ensure-containerd-engine.sh"
    try:
        client = docker.DockerClient(base_url=kind.docker_host, timeout=120)
        client.ping()
    except Exception as exc:  # the suite needs both engines: fail loudly, never skip
        pytest.fail(f"the {kind.id} test engine at {kind.docker_host} does not answer ({exc}); "
                    f"`make engine` (bash {how}) sets it up and starts it", pytrace=False)
    on_containerd = storage_driver_type(client) == SNAPSHOTTER_DRIVER_TYPE
    if on_containerd != (kind.store == "containerd"):
        pytest.fail(f"the {kind.id} test engine at {kind.docker_host} does not use the {kind.store} image store "
                    f"(driver-type {storage_driver_type(client)!r})", pytrace=False)
    return EngineUnderTest(kind, client)
