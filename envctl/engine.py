"""Reaching a Docker Engine, and advice that fits when it cannot be reached."""

from __future__ import annotations

import os
import shutil
from typing import Mapping

import docker
from docker.errors import DockerException

from envctl.errors import HostNotReady

DEFAULT_SOCKET = "/var/run/docker.sock"


def connect(environ: Mapping[str, str] | None = None, timeout: int = 120) -> docker.DockerClient:
    """A client for the engine that DOCKER_HOST (or the default socket) names. Raises
    HostNotReady with advice for the situation: not installed, not running, no permission,
    or a DOCKER_HOST that does not answer."""
    environ = os.environ if environ is None else environ
    if (environ.get("DOCKER_HOST") or "").startswith("ssh://"):
        raise HostNotReady(
            f"DOCKER_HOST={environ['DOCKER_HOST']}: envctl reaches remote engines itself",
            hint="unset DOCKER_HOST and name the server with --host instead",
        )
    try:
        client = docker.DockerClient(base_url=environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}", timeout=timeout)
        client.ping()
        return client
    except DockerException as exc:
        raise _explain(exc, environ) from None
    except OSError as exc:  # raised below docker-py on some socket failures
        raise _explain(exc, environ) from None


def local_socket(environ: Mapping[str, str] | None = None) -> str | None:
    """The engine's unix socket path when it is reached through one, else None."""
    environ = os.environ if environ is None else environ
    host = environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    return host[len("unix://"):] if host.startswith("unix://") else None


def _explain(exc: Exception, environ: Mapping[str, str]) -> HostNotReady:
    text = str(exc)
    docker_host = environ.get("DOCKER_HOST")
    if docker_host:
        return HostNotReady(
            f"the Docker engine at DOCKER_HOST={docker_host} does not answer ({_short(text)})",
            hint="check that the engine runs there, or unset DOCKER_HOST to use the local socket",
        )
    if "Permission denied" in text or "PermissionError" in text:
        return HostNotReady(
            f"no permission to use the Docker socket {DEFAULT_SOCKET}",
            hint="add yourself to the docker group (sudo usermod -aG docker $USER, then log in again) or run as root",
        )
    if shutil.which("dockerd") is None and shutil.which("docker") is None:
        return HostNotReady(
            "Docker is not installed on this host",
            hint="install it (Debian/Ubuntu: sudo apt-get install docker.io; CentOS: yum install docker-ce), then start it",
        )
    if not os.path.exists(DEFAULT_SOCKET) or "Connection refused" in text or "FileNotFoundError" in text:
        return HostNotReady(
            "the Docker engine is not running (no answer on " + DEFAULT_SOCKET + ")",
            hint="start it: sudo systemctl start docker (or run dockerd)",
        )
    return HostNotReady(f"cannot reach the Docker engine: {_short(text)}")


def _short(text: str) -> str:
    return text.splitlines()[0][:300] if text else "no answer"
