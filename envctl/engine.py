"""Reaching a Docker Engine, and the one wrapper every Docker call goes through.

`connect` hands out an `Engine`: docker-py's DockerClient behind a proxy that translates every
exception a call raises (docker-py's, requests' and urllib3's, and OS errors) into an envctl error
with a hint (envctl/engine_errors.py), and wraps what the call returns the same way: models
(Container, Image), collections, the low-level APIClient, and streams (load, logs, exec output,
pull, save), whose errors surface while they are read. Call sites use it as a DockerClient."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Mapping

from docker.api.client import APIClient
from docker.client import DockerClient
from docker.errors import DockerException
from docker.models.containers import ExecResult
from docker.models.resource import Collection, Model

from envctl import interrupts
from envctl.engine_pool import docker_client
from envctl.engine_errors import translate
from envctl.errors import HostNotReady

DEFAULT_SOCKET = "/var/run/docker.sock"


def connect(environ: Mapping[str, str] | None = None, timeout: int = 120) -> "Engine":
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
        base_url = environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
        # docker-py asks the engine's API version (GET /version) before anything else: that
        # answer is the proof that the engine is there, so no ping follows (one request less).
        return Engine(docker_client(base_url, timeout), base_url)
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


class _Translating:
    """A docker-py object whose methods raise envctl errors (engine_errors.translate) and whose
    results are wrapped the same way. Attribute reads are translated too: some are properties
    that ask the engine (Container.image)."""

    __slots__ = ("_target", "_engine_url", "_path")

    def __init__(self, target, engine_url: str, path: str):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_engine_url", engine_url)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str):
        operation = f"{self._path}.{name}" if self._path else name
        try:
            value = getattr(self._target, name)
        except Exception as exc:  # noqa: BLE001  (translate() returns bugs unchanged)
            raise translate(exc, operation, self._engine_url) from None
        if callable(value) and not isinstance(value, type) and not _wrappable(value):
            return _Call(value, self._engine_url, operation)
        return _wrap(value, self._engine_url, operation)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._target, name, value)

    def __eq__(self, other) -> bool:
        return self._target == _unwrap(other)

    def __hash__(self) -> int:
        return hash(self._target)

    def __repr__(self) -> str:
        return repr(self._target)

    def __iter__(self):
        return _Stream(iter(self._target), self._engine_url, self._path)


class Engine(_Translating):
    """The Docker engine as envctl uses it: a DockerClient (`images`, `containers`, `api`,
    `info()`, `version()`, ...) whose errors are envctl errors. `raw` is the DockerClient
    itself, for code that must hand it to docker-py."""

    __slots__ = ()

    def __init__(self, client, where: str | None = None):
        """`where` names the engine in messages: its DOCKER_HOST, or host and socket."""
        super().__init__(client, where or "", "")

    @property
    def raw(self):
        return self._target

    @property
    def where(self) -> str:
        return self._engine_url


class _Call:
    __slots__ = ("_function", "_engine_url", "_operation")

    def __init__(self, function, engine_url: str, operation: str):
        self._function, self._engine_url, self._operation = function, engine_url, operation

    def __call__(self, *args, **kwargs):
        interrupts.check()  # no engine request after Ctrl-C, on any thread
        args = tuple(_unwrap(a) for a in args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        try:
            result = self._function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  (translate() returns bugs unchanged)
            raise translate(exc, self._operation, self._engine_url) from None
        return _wrap(result, self._engine_url, self._operation)


class _Stream:
    """An iterator over what the engine sends (load and pull progress, logs, exec output, image
    bytes); an engine that goes away in the middle raises EngineUnavailable from next()."""

    __slots__ = ("_iterator", "_engine_url", "_operation")

    def __init__(self, iterator, engine_url: str, operation: str):
        self._iterator, self._engine_url, self._operation = iterator, engine_url, operation

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return _wrap(next(self._iterator), self._engine_url, self._operation)
        except StopIteration:
            raise
        except Exception as exc:  # noqa: BLE001  (translate() returns bugs unchanged)
            raise translate(exc, self._operation, self._engine_url) from None

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str):
        return getattr(self._iterator, name)


def translated(iterator, operation: str, where: str) -> Iterator:
    """`iterator` (a stream from the engine that envctl reads itself, e.g. the load answer sent
    over the raw socket) with its errors translated as an Engine's are."""
    return _Stream(iter(iterator), where, operation)


def _wrappable(value) -> bool:
    return isinstance(value, (Model, Collection, APIClient, DockerClient))


def _wrap(value, engine_url: str, operation: str):
    if _wrappable(value):
        return _Translating(value, engine_url, operation)
    if isinstance(value, ExecResult):
        return ExecResult(value.exit_code, _wrap(value.output, engine_url, operation))
    if isinstance(value, list):
        return [_wrap(item, engine_url, operation) for item in value] if any(map(_wrappable, value)) else value
    if isinstance(value, tuple) and type(value) is tuple:  # images.build: (Image, log generator)
        return tuple(_wrap(item, engine_url, operation) for item in value)
    if isinstance(value, Iterator) and not isinstance(value, (_Stream, str, bytes)):
        return _Stream(value, engine_url, operation)
    return value


def _unwrap(value):
    return object.__getattribute__(value, "_target") if isinstance(value, _Translating) else value
