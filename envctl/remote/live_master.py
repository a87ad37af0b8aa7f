"""A remote host's engine reached through what an earlier envctl left running, without starting
ssh: for the quick path of `status --host` (envctl/quick_status_remote.py), which answers before
typer, docker-py and subprocess are imported, or leaves the command to the full path.

An earlier command on the host left, in envctl's private control directory (envctl/remote/ssh.py):

- the master connection's control socket, named after the destination and the ssh config
  (its file's name and the bytes of the files ssh reads: control_name; SSHConnection.control_path;
  ControlPersist keeps the master a while);
- the facts note beside it (`<control socket>.facts`, JSON with the host's `home` and
  `docker_host`: envctl/remote/target.py open_host), read over that master: a note older than
  the socket is another master's (SSHConnection.remembered);
- the host's engine socket forwarded to a local unix socket over the master, named after the
  destination, the ssh config and the engine's socket there (SSHConnection.forward_socket).

`forwarded_engine` finds all three as the full path finds them, computing each name as ssh.py
computes it (tests/unit/test_quick_status_remote_parts.py holds the two to each other), and says None for
anything else: no master answers, the note is missing, older than the master or not the
facts, the forward does not answer, the directory or a socket in it is not this user's own.
The only connections made are to those local sockets: the master was opened with the host's
key (and every jump host's) checked, and a forward of it reaches the host it verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
from typing import Mapping

from envctl.regular_file import read_regular_text
from envctl.remote.ssh_config_files import config_identity

PROBE_TIMEOUT = 2.0  # seconds for a local socket to accept


def control_directory(environ: Mapping[str, str]) -> str | None:
    """Where the master sockets live, as envctl/remote/ssh.py _control_dir says
    (ENVCTL_SSH_CONTROL_DIR, else envctl-ssh-UID in the temporary directory), when it is there,
    this user's and open to no one else; else None (the full path makes it, or refuses a
    directory another user made). None for a relative ENVCTL_SSH_CONTROL_DIR."""
    directory = environ.get("ENVCTL_SSH_CONTROL_DIR") or None
    if directory is not None and not os.path.isabs(directory):
        # The full path hands docker-py the forward as unix://RELATIVE, which it reads as no
        # such socket: an error there, so never an answer here.
        return None
    if directory is None:
        import tempfile  # only here: it imports random and shutil (a few ms)

        directory = os.path.join(tempfile.gettempdir(), f"envctl-ssh-{os.getuid()}")
    return directory if _own(directory, stat.S_ISDIR, private=True, follow=True) else None


def ssh_config(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The ssh config a command uses: --ssh-config, else ENVCTL_SSH_CONFIG, else None (OpenSSH's
    own), as SSHSettings.from_environ reads them."""
    return given or environ.get("ENVCTL_SSH_CONFIG") or None


def control_name(destination: str, config: str | None) -> str:
    """The master socket's file name in the control directory (SSHConnection.control_path):
    after the destination, the config file named and the bytes of every ssh config file read
    (envctl/remote/ssh_config_files.py: an edited config opens a master of its own)."""
    return hashlib.sha256(f"{destination}\0{config}\0{config_identity(config)}".encode()).hexdigest()[:20]


def forward_name(destination: str, config: str | None, remote_socket: str) -> str:
    """The file name of the local end of the engine's forwarded socket (SSHConnection.forward_socket),
    named as its master is (control_name) and after the engine's socket there."""
    said = f"{destination}\0{config}\0{config_identity(config)}\0{remote_socket}"
    return "docker-" + hashlib.sha256(said.encode()).hexdigest()[:16] + ".sock"


def forwarded_engine(destination: str, config: str | None, directory: str) -> str | None:
    """The local unix socket at which the engine of `destination` (an SSH destination as the
    inventory resolves it; `config`: the ssh config file, see `ssh_config`) is forwarded by a
    live master connection whose socket is in `directory` (see `control_directory`), as the
    full path would use it; None when the full path would do anything else (open a master,
    read the facts, forward the socket) or fail."""
    master = os.path.join(directory, control_name(destination, config))
    note_path = master + ".facts"
    try:
        master_made = os.stat(master).st_mtime_ns
        note = os.stat(note_path)
    except OSError:
        return None
    if note.st_mtime_ns < master_made or not _own(master, stat.S_ISSOCK) or not answers(master):
        return None  # another master's note, or no master
    try:
        facts = json.loads(read_regular_text(note_path))
    except (OSError, ValueError):
        return None
    # open_host takes the note's facts only when both are text; its engine must be a unix socket
    if not isinstance(facts, dict) or not isinstance(facts.get("home"), str):
        return None
    docker_host = facts.get("docker_host")
    if not isinstance(docker_host, str) or not docker_host.startswith("unix://"):
        return None
    local = os.path.join(directory, forward_name(destination, config, docker_host[len("unix://"):]))
    return local if _own(local, stat.S_ISSOCK) and _docker_py_reaches(local) else None


def _docker_py_reaches(local: str) -> bool:
    """Whether docker-py, handed `unix://LOCAL` by the full path (envctl/hosts/ssh.py engine),
    connects to `local` itself: its parse_host reads the address with urllib's urlparse and
    refuses one with a query, fragment or parameters (a `?` or `#` in the directory's name), and
    a relative path's first part is a host name to it."""
    from urllib.parse import urlparse

    parsed = urlparse(f"unix://{local}")
    return parsed.path == local and not (parsed.netloc or parsed.params or parsed.query or parsed.fragment)


def _own(path: str, kind, private: bool = False, follow: bool = False) -> bool:
    """Whether `path` is of `kind` (stat.S_ISDIR, S_ISSOCK) and this user's, and (`private`)
    open to no one else: a socket planted by another user is never talked to. `follow`: a
    symbolic link to such a file counts (the full path takes ENVCTL_SSH_CONTROL_DIR through one)
    when the link is this user's too, so that no one else can point it elsewhere."""
    try:
        found = os.lstat(path)
        if follow and stat.S_ISLNK(found.st_mode) and found.st_uid == os.getuid():
            found = os.stat(path)
    except OSError:
        return False
    return kind(found.st_mode) and found.st_uid == os.getuid() and not (private and found.st_mode & 0o077)


def answers(path: str) -> bool:
    """Whether something listens on the unix socket at `path` (within PROBE_TIMEOUT seconds);
    envctl/remote/ssh.py asks it too, of its master and its forward."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
