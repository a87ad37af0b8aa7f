"""The advice given when the Docker engine cannot be reached fits the situation."""

import socket

from envctl.engine import connect
from envctl.errors import HostNotReady

import pytest


def advice(environ) -> HostNotReady:
    with pytest.raises(HostNotReady) as caught:
        connect(environ, timeout=3)
    return caught.value


def test_docker_host_that_does_not_answer(tmp_path):
    error = advice({"DOCKER_HOST": f"unix://{tmp_path}/missing.sock"})
    assert error.message.startswith(f"the Docker engine at DOCKER_HOST=unix://{tmp_path}/missing.sock does not answer")
    assert error.hint == "check that the engine runs there, or unset DOCKER_HOST to use the local socket"


def test_a_socket_nobody_listens_on(tmp_path):
    # A real unix socket that was bound and closed: connecting is refused.
    path = tmp_path / "dead.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    error = advice({"DOCKER_HOST": f"unix://{path}"})
    assert "does not answer" in error.message and error.exit_code == 5


def test_ssh_docker_host_points_to_envctl_hosts():
    error = advice({"DOCKER_HOST": "ssh://lab3"})
    assert error.message == "DOCKER_HOST=ssh://lab3: envctl reaches remote engines itself"
