"""A container `up` creates is started with its first setup step's exec created right behind the
start, on the connection the plan's rounds left open (envctl/lifecycle.py _start_then_exec;
observe_engine.view keeps it): one round trip for both on an SSH host. On a real engine's
socket (both engines): the exec made so runs the step as run_planned's own would, with its
environment, working directory and the passed variables; without a kept connection the start is
docker-py's as before; a container that cannot start is said and removed as before, in the same
words."""

from __future__ import annotations

import uuid

import pytest

from envctl import engine_socket
from envctl.containers import ContainerSpec
from envctl.engine import Engine
from envctl.errors import EnvctlError
from envctl.lifecycle import execute
from envctl.plan import RunSetup, World
from envctl.setup_steps import exec_body, run_planned
from testimages import _rootfs_tar, remove_images

pytestmark = pytest.mark.both_engines

STEP = RunSetup(index=0, name="say", argv=("sh", "-c", 'echo "$WHO $PASSED $(pwd)"'), workdir="/tmp",
                env={"WHO": "step"}, uses=(), step_hash="1" * 64, action="run")


@pytest.fixture
def image(engine):
    ref = f"envctl-it/start-then-exec:{uuid.uuid4().hex[:8]}"
    engine.api.import_image_from_data(_rootfs_tar(), repository=ref.split(":")[0], tag=ref.split(":")[1])
    yield ref
    remove_images(engine, [ref])


@pytest.fixture
def create(engine, image, tmp_path):
    """create(kept, command=None) → (ContainerOutcome, name): `up`'s create of a new container
    whose plan runs STEP, with a connection kept for the engine's socket or not. `create.taken`:
    for each call, whether the kept connection was taken."""
    made = []

    def create(kept: bool, command: tuple[str, ...] | None = None):
        name = f"it-start-then-exec-{uuid.uuid4().hex[:8]}"
        made.append(name)
        spec = ContainerSpec(name=name, image=image, manifest="it-start-then-exec", variant=None, cards=(),
                             **({"command": command} if command else {}))
        path = engine.api._custom_adapter.socket_path
        if kept:
            engine_socket.keep(path, engine_socket.Pipelined(path))
        image_id = engine.images.get(image).id
        try:
            return execute(Engine(engine, "the engine under test"), spec, "create", World(True, image_id), image_id,
                           str(tmp_path / "manifest.yaml"), tmp_path,
                           then_exec=lambda api, container_id: exec_body(api, container_id, STEP, {"PASSED": "given"})), name
        finally:
            create.taken.append(kept and path not in engine_socket._KEPT)
            leftover = engine_socket.reused(path)  # nothing left kept for the next test
            if leftover is not None:
                leftover.__exit__(None, None, None)

    create.taken = []

    yield create
    for name in made:
        try:
            engine.containers.get(name).remove(force=True)
        except Exception:  # noqa: BLE001 (removed by the test, or never made)
            pass


def test_the_exec_made_behind_the_start_runs_the_step_as_its_own_would(engine, create):
    outcome, name = create(kept=True)
    assert outcome.action == "created" and outcome.exec_id and create.taken == [True]
    assert engine.containers.get(name).status == "running"
    said = []
    steps = run_planned(Engine(engine, "the engine under test"), outcome.container_id, (STEP,), said.append,
                        passed={"PASSED": "given"}, masked=(), made=(STEP.index, outcome.exec_id))
    assert [s.action for s in steps] == ["ran"]
    assert "  | step given /tmp" in said
    # The marker the wrapper writes: the step is known as done, as after an exec of run_planned's own.
    markers = engine.containers.get(name).exec_run(["ls", "/var/lib/envctl/setup"]).output.decode().split()
    assert len(markers) == 1


def test_without_a_kept_connection_the_start_is_as_before(engine, create):
    outcome, name = create(kept=False)
    assert outcome.action == "created" and outcome.exec_id is None
    assert engine.containers.get(name).status == "running"


def test_a_container_that_cannot_start_is_said_and_removed_in_the_same_words(engine, create):
    """Refused on the kept connection (the pipelined start's answer) and through docker-py."""
    said = {}
    for kept in (True, False):
        with pytest.raises(EnvctlError) as raised:
            create(kept=kept, command=("/no/such/program",))
        name = raised.value.message.split(" ")[5].rstrip(":")
        said[kept] = raised.value.message.replace(name, "NAME")
        assert not engine.containers.list(all=True, filters={"name": name})  # removed, as before
    assert create.taken == [True, False]
    assert said[True] == said[False]
    assert said[True].startswith("the engine could not start NAME: "), said
