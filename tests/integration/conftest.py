"""Integration fixtures: real Docker engines (tests/engines.py: the classic store, and the
containerd store for tests marked `both_engines`), test images built locally (no registry), and
simulated accelerator hosts under temporary host roots. Everything created is labelled or named
for the tests and removed afterwards."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import textwrap
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

import hostsim
from engines import CLASSIC, ENGINE_KINDS, EngineUnderTest, connect
from support import IMAGE, SESSION
from testimages import save_image

NAME_PREFIX = f"it-{SESSION}-"  # manifests (and so containers) of this session only


def pytest_configure(config):
    config.addinivalue_line("markers", "both_engines: run once on each test engine, the classic and the containerd "
                                       "image store (tests/engines.py)")


def pytest_generate_tests(metafunc):
    """Every test that uses an engine gets one: both for `both_engines`, else the classic one.
    (Parametrized even with one engine, so that all tests on an engine share its session.)"""
    if "engine_under_test" in metafunc.fixturenames:
        kinds = ENGINE_KINDS if metafunc.definition.get_closest_marker("both_engines") else (CLASSIC,)
        metafunc.parametrize("engine_under_test", kinds, ids=[k.id for k in kinds], indirect=True, scope="session")


@pytest.fixture(scope="session")
def engine_under_test(request) -> EngineUnderTest:
    under_test = connect(request.param)
    yield under_test
    client = under_test.client
    for container in client.containers.list(all=True, filters={"label": "io.envctl.manifest"}, ignore_removed=True):
        if container.labels.get("io.envctl.manifest", "").startswith(NAME_PREFIX):
            container.remove(force=True)
    for image in client.images.list(name="envctl-it/*"):
        for tag in image.tags:
            if tag.endswith(f":{SESSION}") or not re.search(r":s\d+$", tag):  # not another session's IMAGE
                client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def engine(engine_under_test):
    """The docker-py client of the engine under test."""
    return engine_under_test.client


@dataclass(frozen=True)
class Tarballs:
    """`docker save` tarballs written by the classic engine (Docker 20.10's layout, what most
    users have), with the image IDs the engine under test gives them after `docker load`: the
    config digest on the classic store, the manifest digest on the containerd store."""

    plain: Path  # docker save of IMAGE
    gz: Path  # the same, gzipped
    image_id: str
    other: Path  # a different image under the same tag (a tag that moves)
    other_id: str
    corrupt: Path  # a truncated copy of `plain`
    config_digest: str  # of `plain`'s image: its ID on the classic store, the same on every engine
    other_config_digest: str


@pytest.fixture(scope="session")
def saved_tarballs(tmp_path_factory) -> dict[str, Path | str]:
    """The tarballs, saved once by the classic engine; values: paths, and config digests."""
    classic = connect(CLASSIC).client
    directory = tmp_path_factory.mktemp("images")
    plain, other = directory / "busybox.tar", directory / "busybox-other.tar"
    config_digest = save_image(classic, None, plain)
    other_config_digest = save_image(classic, {"etc/other": b"a different image\n"}, other)
    gz = directory / "busybox.tar.gz"
    with open(plain, "rb") as source, gzip.open(gz, "wb") as target:
        shutil.copyfileobj(source, target)
    corrupt = directory / "busybox-corrupt.tar"
    corrupt.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    return {"plain": plain, "gz": gz, "other": other, "corrupt": corrupt, "config_digest": config_digest,
            "other_config_digest": other_config_digest}


def loaded_image_id(engine, tarball: Path) -> str:
    """The image ID `engine` gives `tarball`'s image when `docker load` loads it (the image is
    removed again; the tarball holds IMAGE)."""
    engine.images.load(tarball.read_bytes())
    image_id = engine.images.get(IMAGE).id
    engine.images.remove(IMAGE, force=True)
    return image_id


@pytest.fixture(scope="session")
def tarballs(engine, saved_tarballs) -> Tarballs:
    saved = saved_tarballs
    return Tarballs(saved["plain"], saved["gz"], loaded_image_id(engine, saved["plain"]), saved["other"],
                    loaded_image_id(engine, saved["other"]), saved["corrupt"], saved["config_digest"],
                    saved["other_config_digest"])


@dataclass
class Env:
    """One test's world: a manifest, a simulated host, and envctl run as a user runs it."""

    name: str
    root: Path
    base: Path
    manifest: Path
    engine: object
    docker_host: str | None = None  # the engine under test's DOCKER_HOST, handed to envctl

    @property
    def container(self) -> str:
        return f"envctl-{self.name}"

    def environ(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
        env.update(HOME=str(self.base / "home"), ENVCTL_HOST_ROOT=str(self.root), ENVCTL_CACHE=str(self.base / "cache"),
                   ENVCTL_WORKSPACE=str(self.base / "workspaces"))
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
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
        matches = [c for c in self.engine.containers.list(all=True, ignore_removed=True) if c.name == self.container]
        return matches[0] if matches else None

    def inside(self, command: str) -> tuple[int, str]:
        code, output = self.get().exec_run(["sh", "-c", command])
        return code, output.decode()


@pytest.fixture
def make_env(engine_under_test, tmp_path):
    engine = engine_under_test.client
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
        env = Env(name, root, tmp_path, tmp_path / f"{name}.yaml", engine, engine_under_test.docker_host)
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
