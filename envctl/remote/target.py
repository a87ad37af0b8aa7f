"""A remote host made ready for the commands: its SSH connection, its Docker engine (the remote
socket forwarded to a local one over the master connection, so docker-py and the docker CLI
work unchanged), and where envctl keeps things there."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Mapping

from envctl.errors import HostNotReady
from envctl.hosts.ssh import SSHHost
from envctl.remote.ssh import RemoteError, SSHConnection, SSHSettings

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# One round trip: the remote user's home and the engine the remote's own `docker` would use.
_FACTS = 'printf "%s\\n%s\\n" "$HOME" "${DOCKER_HOST:-' + DEFAULT_DOCKER_HOST + '}"'


@dataclass
class RemoteTarget:
    name: str  # as the user named it (inventory or ssh config)
    connection: SSHConnection
    host: SSHHost
    data_dir: str  # envctl's directory on that host: cache/ and workspaces/ below it
    docker_socket: str  # the engine's socket on the host
    fetch: str = "push"
    cards: int | tuple[int, ...] | None = None  # the inventory's: a count or indices (envctl.cards)
    env: dict = field(default_factory=dict, repr=False)  # may hold tokens: never in a repr
    _local_socket: str | None = None  # where it is forwarded to here
    _client: object = None

    @property
    def cache(self) -> str:
        return posixpath.join(self.data_dir, "cache")

    def environ(self) -> dict[str, str]:
        """Path settings as seen on the remote, for planning (cache and workspace paths there)."""
        return {"ENVCTL_CACHE": self.cache, "ENVCTL_WORKSPACE": posixpath.join(self.data_dir, "workspaces")}

    def docker(self):
        """The remote engine (an envctl.engine.Engine over docker-py), through the forwarded socket."""
        if self._client is None:
            import docker
            from docker.errors import DockerException

            local = self.connection.forward_socket(self.docker_socket)
            try:
                client = docker.DockerClient(base_url=f"unix://{local}", timeout=300)
                client.ping()
            except (DockerException, OSError) as exc:
                raise HostNotReady(f"{self.name}: the Docker engine at {self.docker_socket} does not answer ({exc})",
                                   hint=f"check it there: ssh {self.connection.destination} docker info") from None
            from envctl.engine import Engine

            self._client = Engine(client, f"{self.name}:{self.docker_socket}")
            self._local_socket = local
        return self._client

    def docker_cli_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """The local environment for the docker CLI, pointed at the remote engine."""
        self.docker()
        return {**base, "DOCKER_HOST": f"unix://{self._local_socket}"}


def open_target(name: str, destination: str, settings: SSHSettings, data_dir: str | None = None, root: str = "/",
                fetch: str = "push", cards=None, env: Mapping[str, str] | None = None) -> RemoteTarget:
    connection = SSHConnection(destination, settings)
    facts = connection.connect(["sh", "-c", _FACTS]).splitlines()
    home, docker_host = (facts + ["", ""])[:2]
    if not docker_host.startswith("unix://"):
        raise RemoteError(f"{name}: its DOCKER_HOST is {docker_host}; envctl reaches remote engines on their unix socket",
                          hint="unset DOCKER_HOST for that account on the server")
    data = data_dir or posixpath.join(home or "/root", ".local/share/envctl")
    return RemoteTarget(name, connection, SSHHost(name, connection, root), data, docker_host[len("unix://"):], fetch, cards,
                        dict(env or {}))


class RemoteLog:
    """An entrypoint's output appended to a log file in the remote workspace as it arrives, so
    the log lives beside the environment, as it does on this machine."""

    def __init__(self, connection: SSHConnection, path: str):
        import subprocess

        self.path = path
        self._process = subprocess.Popen(
            connection.command(["sh", "-c", 'mkdir -p "${1%/*}" && cat >> "$1"', "sh", path]),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def write(self, data: bytes) -> None:
        try:
            self._process.stdin.write(data)
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the log is a copy: a lost connection must not stop the entrypoint's output

    def close(self) -> None:
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        self._process.wait(timeout=60)
