"""Opening a remote host: its SSH connection, where envctl keeps things there, and the engine
the server's own `docker` would use; the host itself is an SSHHost (envctl/hosts/ssh.py), the
same seam as this machine's LocalHost."""

from __future__ import annotations

import posixpath
from typing import Mapping

from envctl.hosts.ssh import PROBE_ROUND, SSHHost
from envctl.remote.ssh import RemoteError, SSHConnection, SSHSettings

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# The remote user's home and the engine the remote's own `docker` would use, on two lines; then
# (with the probe round's arguments after them) the probe round of envctl/hosts/ssh.py: the
# connection, the facts and every device probe of a plan in one round trip.
_FACTS = 'printf "%s\\n%s\\n" "$HOME" "${DOCKER_HOST:-' + DEFAULT_DOCKER_HOST + '}"'
_FACTS_AND_PROBES = _FACTS + '\n[ "$#" -gt 0 ] || exit 0\n' + PROBE_ROUND


def open_host(name: str, destination: str, settings: SSHSettings, data_dir: str | None = None, root: str = "/",
              fetch: str = "push", cards=None, env: Mapping[str, str] | None = None) -> SSHHost:
    """Connect (host keys verified on every hop) and ask the server where its home and engine
    are. `cards`: the inventory's, a count or indices (envctl.cards). Raises RemoteError.

    Round trips: none when a master connection to the host is up and an earlier envctl kept
    the facts beside it (SSHConnection.remembered); else one, which opens the connection and
    brings the host's device probes too (SSHHost.take_probe_round)."""
    connection = SSHConnection(destination, settings)
    kept = connection.remembered()
    probes: list[str] = []
    if kept is not None:
        facts = kept
    else:
        probes = SSHHost(name, connection, root).probe_arguments()
        facts = connection.connect(["sh", "-c", _FACTS_AND_PROBES, "sh", *probes], reads_only=True)
    head, _, probed = facts.partition("\n")
    docker_host, _, probed = probed.partition("\n")
    home = head
    if not docker_host.startswith("unix://"):
        raise RemoteError(f"{name}: its DOCKER_HOST is {docker_host}; envctl reaches remote engines on their unix socket",
                          hint="unset DOCKER_HOST for that account on the server")
    if kept is None:
        connection.remember(f"{home}\n{docker_host}\n")
    data = data_dir or posixpath.join(home or "/root", ".local/share/envctl")
    host = SSHHost(name, connection, root, data, docker_host[len("unix://"):], fetch, env, cards)
    if probes:
        host.take_probe_round(probes, probed)
    return host


class RemoteLog:
    """An entrypoint's output appended to a log file in the remote workspace as it arrives, so
    the log lives beside the environment, as it does on this machine."""

    def __init__(self, connection: SSHConnection, path: str):
        import subprocess

        self.path = path
        # A session of its own: a terminal's Ctrl-C reaches envctl's process group, and the log
        # must keep what the entrypoint prints while it stops.
        self._process = subprocess.Popen(
            connection.command(["sh", "-c", 'mkdir -p "${1%/*}" && cat >> "$1"', "sh", path]),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

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
