"""Integration fixtures: a real Docker engine, test images built locally (no registry), and
simulated accelerator hosts under temporary host roots. Everything created is labelled or named
for the tests and removed afterwards."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

import hostsim
from support import IMAGE
from testimages import save_image

NAME_PREFIX = "it-"


@pytest.fixture(scope="session")
def engine():
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the suite needs an engine: fail loudly, never skip
        pytest.fail(f"no Docker engine answers ({exc}); `make test` installs and starts one", pytrace=False)
    yield client
    for container in client.containers.list(all=True, filters={"label": "io.envctl.manifest"}):
        if container.labels.get("io.envctl.manifest", "").startswith(NAME_PREFIX):
            container.remove(force=True)
    for image in client.images.list(name="envctl-it/*"):
        for tag in image.tags:
            client.images.remove(tag, force=True)


@dataclass(frozen=True)
class Tarballs:
    plain: Path  # docker save of IMAGE
    gz: Path  # the same, gzipped
    image_id: str
    other: Path  # a different image under the same tag (a tag that moves)
    other_id: str
    corrupt: Path  # a truncated copy of `plain`


@pytest.fixture(scope="session")
def tarballs(engine, tmp_path_factory) -> Tarballs:
    directory = tmp_path_factory.mktemp("images")

    plain, other = directory / "busybox.tar", directory / "busybox-other.tar"
    image_id = save_image(engine, None, plain)
    other_id = save_image(engine, {"etc/other": b"a different image\n"}, other)
    gz = directory / "busybox.tar.gz"
    with open(plain, "rb") as source, gzip.open(gz, "wb") as target:
        shutil.copyfileobj(source, target)
    corrupt = directory / "busybox-corrupt.tar"
    corrupt.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    return Tarballs(plain, gz, image_id, other, other_id, corrupt)


@dataclass
class Env:
    """One test's world: a manifest, a simulated host, and envctl run as a user runs it."""

    name: str
    root: Path
    base: Path
    manifest: Path
    engine: object

    @property
    def container(self) -> str:
        return f"envctl-{self.name}"

    def environ(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
        env.update(HOME=str(self.base / "home"), ENVCTL_HOST_ROOT=str(self.root), ENVCTL_CACHE=str(self.base / "cache"),
                   ENVCTL_WORKSPACE=str(self.base / "workspaces"))
        env.update(extra)
        return env

    def run(self, *args, env=None, timeout=120, **popen) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                              env=env or self.environ(), timeout=timeout, **popen)

    def popen(self, *args, env=None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "envctl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env or self.environ())

    def write(self, body: str) -> Path:
        text = f"name: {self.name}\ndescription: integration test environment\n" + textwrap.dedent(body)
        self.manifest.write_text(text)
        return self.manifest

    def get(self):
        matches = [c for c in self.engine.containers.list(all=True) if c.name == self.container]
        return matches[0] if matches else None

    def inside(self, command: str) -> tuple[int, str]:
        code, output = self.get().exec_run(["sh", "-c", command])
        return code, output.decode()


@pytest.fixture
def make_env(engine, tmp_path):
    made = []

    def factory(kind: str = "mlu", cards: int = 2, **host) -> Env:
        name = f"{NAME_PREFIX}{uuid.uuid4().hex[:8]}"
        root = tmp_path / f"host-{name}"
        if kind == "mlu":
            hostsim.mlu_host(root, cards=cards, **host)
        elif kind == "npu":
            hostsim.npu_host(root, cards=cards, **host)
        else:
            root.mkdir()
        env = Env(name, root, tmp_path, tmp_path / f"{name}.yaml", engine)
        made.append(env)
        return env

    yield factory
    for env in made:
        container = env.get()
        if container is not None:
            container.remove(force=True)
        # Images `envctl build` baked for this test's manifest (they are tagged per content).
        for image in engine.images.list(filters={"label": f"io.envctl.baked-for={env.name}"}):
            engine.images.remove(image.id, force=True)


@pytest.fixture
def no_image(engine):
    """The test image is not on the engine when the test starts."""
    for tag in (IMAGE,):
        try:
            engine.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
