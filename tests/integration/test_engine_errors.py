"""The Engine wrapper (envctl/engine.py) on a real engine: each kind of failure docker-py reports
becomes an envctl error with its exit code and a hint, and stays the docker-py class that call
sites branch on. Kinds: 404 (no such image, no such container), 409 (a name in use), 400 (a
value the engine refuses), a value docker-py refuses before sending it, an engine that does not
answer (a unix socket nobody listens on), and the same through models, lists and streams."""

from __future__ import annotations

import socket
import uuid

import docker
import docker.errors
import pytest
import requests

from envctl.engine import Engine
from envctl.engine_errors import EngineConflict, EngineNotFound, EngineRefused, EngineUnavailable
from envctl.errors import EXIT_ENGINE_FAILED, EXIT_HOST_NOT_READY, EnvctlError
from testimages import _rootfs_tar

IMAGE = "envctl-it/engine-errors:1"


@pytest.fixture
def wrapped(engine, testimage):
    return Engine(engine, "unix:///var/run/docker.sock")


@pytest.fixture(scope="module")
def testimage(engine):
    """A busybox image of this module's own (tests/testimages.py), removed afterwards."""
    repository, tag = IMAGE.rsplit(":", 1)
    engine.api.import_image_from_data(_rootfs_tar(), repository=repository, tag=tag)
    yield
    engine.images.remove(IMAGE, force=True)


@pytest.fixture
def names(engine):
    made: list[str] = []
    yield made
    for name in made:
        try:
            engine.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass


def test_no_such_image_is_both_envctl_and_docker_py(wrapped):
    with pytest.raises(docker.errors.ImageNotFound) as caught:
        wrapped.images.get("envctl-it/absent:none")
    error = caught.value
    assert isinstance(error, EngineNotFound) and isinstance(error, EnvctlError)
    assert error.exit_code == EXIT_ENGINE_FAILED and error.status_code == 404
    assert error.message.startswith("not found on the Docker engine (images.get): ")
    assert "envctl-it/absent:none" in error.message and error.hint


def test_no_such_container_through_a_model(wrapped, names):
    name = f"it-errors-{uuid.uuid4().hex[:8]}"
    names.append(name)
    container = wrapped.containers.create(IMAGE, ["true"], name=name)
    container.remove()
    with pytest.raises(EngineNotFound) as caught:
        container.reload()
    assert isinstance(caught.value, docker.errors.NotFound) and "reload" in caught.value.message


def test_a_name_in_use_is_a_conflict(wrapped, names):
    name = f"it-errors-{uuid.uuid4().hex[:8]}"
    names.append(name)
    wrapped.containers.create(IMAGE, ["true"], name=name)
    with pytest.raises(EngineConflict) as caught:
        wrapped.containers.create(IMAGE, ["true"], name=name)
    assert caught.value.status_code == 409 and caught.value.exit_code == EXIT_ENGINE_FAILED
    assert name in caught.value.message and "docker ps -a" in caught.value.hint


def test_a_value_the_engine_refuses(wrapped, names):
    name = f"it-errors-{uuid.uuid4().hex[:8]}"
    names.append(name)
    with pytest.raises(EngineRefused) as caught:  # a bind source must be an absolute path
        wrapped.containers.create(IMAGE, ["true"], name=name, volumes={"relative/dir": {"bind": "/x", "mode": "ro"}})
    assert caught.value.status_code == 400 and "manifest" in caught.value.hint


def test_a_value_docker_py_refuses_before_sending(wrapped):
    with pytest.raises(EngineRefused) as caught:
        wrapped.containers.create(IMAGE, ["true"], shm_size="1Q")
    assert isinstance(caught.value, docker.errors.DockerException)
    assert caught.value.message.startswith("Docker refused a value (containers.create): ") and "1Q" in caught.value.message


def test_an_engine_that_does_not_answer(tmp_path):
    path = tmp_path / "gone.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()  # the file stays; nobody listens: connect() is refused, as after dockerd died
    gone = Engine(docker.DockerClient(base_url=f"unix://{path}", version="1.41", timeout=5), f"unix://{path}")
    with pytest.raises(EngineUnavailable) as caught:
        gone.containers.list(all=True)
    error = caught.value
    assert isinstance(error, requests.exceptions.ConnectionError)
    assert error.exit_code == EXIT_HOST_NOT_READY
    assert error.message.startswith(f"the Docker engine at unix://{path} stopped answering during containers.list")
    assert "systemctl status docker" in error.hint


def test_models_lists_and_streams_are_wrapped(wrapped, names):
    name = f"it-errors-{uuid.uuid4().hex[:8]}"
    names.append(name)
    container = wrapped.containers.run(IMAGE, ["sh", "-c", "echo one; echo two"], name=name, detach=True)
    container.wait()
    assert [c for c in wrapped.containers.list(all=True, filters={"name": name})] == [container]
    assert b"".join(container.logs(stream=True)) == b"one\ntwo\n"
    saved = wrapped.api.get_image(IMAGE)  # `docker save` bytes, streamed
    assert type(saved).__name__ == "_Stream" and len(next(saved)) > 0
