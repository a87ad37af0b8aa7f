"""Opening a remote host: its SSH connection, where envctl keeps things there, and the engine
the server's own `docker` would use; the host itself is an SSHHost (envctl/hosts/ssh.py), the
same seam as this machine's LocalHost."""

from __future__ import annotations

import json
import posixpath
from typing import Mapping

from envctl.hosts.ssh import PROBE_ROUND, RECORDS_NOTED, SSHHost, probe_arguments
from envctl.remote.ssh import RemoteError, SSHConnection, SSHSettings

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# The remote user's home and the engine the remote's own `docker` would use, on two lines; then
# (with the probe round's arguments after them) the probe round of envctl/hosts/ssh.py: the
# connection, the facts and every device probe of a plan in one round trip.
_FACTS = 'printf "%s\\n%s\\n" "$HOME" "${DOCKER_HOST:-' + DEFAULT_DOCKER_HOST + '}"'
_FACTS_AND_PROBES = _FACTS + '\n[ "$#" -gt 0 ] || exit 0\n' + PROBE_ROUND


def open_host(name: str, destination: str, settings: SSHSettings, data_dir: str | None = None, root: str = "/",
              fetch: str = "push", cards=None, env: Mapping[str, str] | None = None, probes: bool = True) -> SSHHost:
    """Connect (host keys verified on every hop) and ask the server where its home and engine
    are. `cards`: the inventory's, a count or indices (envctl.cards). `probes`: False for a
    command that reads only the engine (status): no probe round is started for it (one is run
    if it probes after all). Raises RemoteError.

    Round trips: when a master connection to the host is up and an earlier envctl kept the
    facts beside it (SSHConnection.remembered), none is waited for: the probe round starts and
    runs while this machine goes on (SSHHost.start_probe_round). Else one, which opens the
    connection and brings the probe round too. Either round also reads the records of the
    artifact entries the last command on this host asked for and whether the directories it
    made are there (the note's "records" and "dirs": guesses only, read afresh), so an up of
    the same environment asks nothing more for them."""
    connection = SSHConnection(destination, settings)
    note = _note(connection.remembered(any_master=True))
    records, dirs = _noted(note, "records"), _noted(note, "dirs")
    arguments = None  # the probe round's, when it comes with the facts
    if connection.remembered() is not None and isinstance(note.get("home"), str) \
            and isinstance(note.get("docker_host"), str):
        home, docker_host = note["home"], note["docker_host"]
    else:
        arguments = probe_arguments(root, records, dirs) if probes else []
        generation = connection.generation
        facts = connection.connect(["sh", "-c", _FACTS_AND_PROBES, "sh", *arguments], reads_only=True)
        home, _, rest = facts.partition("\n")
        docker_host, _, probed = rest.partition("\n")
    if not docker_host.startswith("unix://"):
        raise RemoteError(f"{name}: its DOCKER_HOST is {docker_host}; envctl reaches remote engines on their unix socket",
                          hint="unset DOCKER_HOST for that account on the server")
    data = data_dir or posixpath.join(home or "/root", ".local/share/envctl")
    host = SSHHost(name, connection, root, data, docker_host[len("unix://"):], fetch, env, cards)
    host.note = {"home": home, "docker_host": docker_host, "records": records, "dirs": dirs}
    if arguments:
        host.take_probe_round(arguments, probed, generation)
    elif arguments is None and probes:
        host.start_probe_round(records, dirs)
    if arguments is not None:
        connection.remember(json.dumps(host.note))
    return host


def _noted(note: dict, kind: str) -> list[str]:
    listed = note.get(kind)  # hints: a note of another envctl's shape gives none
    return [path for path in listed if isinstance(path, str)][:RECORDS_NOTED] if isinstance(listed, list) else []


def _note(text: str | None) -> dict:
    try:
        note = json.loads(text) if text else {}
    except ValueError:
        return {}
    return note if isinstance(note, dict) else {}


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
