"""What envctl needs from a machine, whichever way it is reached: probes that read it, and the
writes `up` makes there (directories, files, blobs checked by sha256, downloads, the writable
copy of an artifact, the engine). LocalHost and SSHHost implement it, so one apply body serves
this machine and a server over SSH: the caller does not branch on where the machine is. The
model is fabric's Connection, which subclasses invoke's Context ("a context within which
commands, tasks etc can operate", fabric/connection.py) and adds put/get, so code written
against a Context runs locally or over SSH alike.

`root` is where probes look: "/" on a real host; a directory that mimics one (device nodes
under <root>/dev, driver files under <root>/proc, tools under <root>/usr/bin) to simulate an
accelerator host in tests and demos. Paths returned by `under_root` are real paths on that
machine, so Docker can be handed them (a simulated /dev/davinci0 is <root>/dev/davinci0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class Host(Protocol):
    name: str
    root: str

    def under_root(self, path: str) -> str:
        """The real path of `path` on the probed host (identity when root is /)."""

    def read_text(self, path: str) -> str | None:
        """A file's text, or None when it does not exist or cannot be read."""

    def glob(self, pattern: str) -> list[str]:
        """Real paths matching a glob pattern, sorted."""

    def is_char_device(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool:
        """Whether `path` is a directory (symlinks followed)."""

    def which(self, tool: str) -> str | None:
        """The tool's real path, looked up in the probed host's standard bin directories."""

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        """Run a command (an argument list, never a shell string)."""


class WritableHost(Host, Protocol):
    """A Host that `up` changes. Paths are the host's own (POSIX strings). Every method raises
    an EnvctlError (FetchError, RemoteError, HostNotReady) with the host's words, never a
    traceback; nothing partial is ever taken for whole."""

    fetch_mode: str | None  # None: this machine; "push" or "remote": who downloads for an SSH host

    @property
    def cache_root(self) -> str:
        """envctl's cache there: blobs/sha256/<hex>, artifacts/<key> and <key>.json records."""

    @property
    def workspace_root(self) -> str:
        """Where environments' workspaces are there (one directory per container below it)."""

    @property
    def lock_dir(self) -> str:
        """Where this machine keeps the locks that serialise `up`s of one environment on the host."""

    def environ(self) -> dict[str, str]:
        """ENVCTL_CACHE and ENVCTL_WORKSPACE as seen on the host, for planning its paths."""

    def engine(self):
        """The host's Docker engine (envctl.engine.Engine); raises HostNotReady when it does not answer."""

    def engine_socket(self) -> str | None:
        """A unix socket on this machine that reaches the engine, for sendfile loads; None for none."""

    def image_loader(self):
        """How an image tarball on this machine reaches the engine, for image_step.ensure_image:
        None when the engine loads it from here itself."""

    def mkdirs(self, path: str) -> None: ...

    def make_workspace(self, path: str, mark: str) -> None:
        """The directory `path` (made with its parents when absent) holding `mark` in its
        paths.WORKSPACE_MARK (written when it holds another or none)."""

    def write_file(self, path: str, data: bytes) -> None:
        """Replace `path` with `data` atomically (a reader sees the old or the new bytes)."""

    def newest(self, directory: str, pattern: str) -> str | None:
        """The most recently modified file in `directory` matching a glob `pattern`, else None."""

    def stream(self, path: str, follow: bool, secrets: frozenset[str] = frozenset(), ended=None) -> int:
        """Copy a file there to this process's stdout (with `follow`, what is appended too,
        until `ended()` says the run writing it has ended and the rest is copied, or until
        interrupted when `ended` is None), the values in `secrets` masked (envctl.masking);
        returns an exit status."""

    def free_bytes(self, path: str) -> int:
        """Free bytes on the filesystem that holds `path` there, or will once it is made."""

    def remove_tree(self, path: str) -> None:
        """Delete a file or directory tree there (nothing when it is not there)."""

    def log_writer(self, path: str):
        """Where an entrypoint's output is appended as it arrives, for envctl.execute.run: None
        when execute writes `path` itself (this machine)."""

    def docker_cli_environ(self, base) -> dict[str, str]:
        """The environment for this machine's docker CLI, pointed at the host's engine."""

    def copy_tree(self, source: str, destination: str) -> None:
        """Replace `destination` with a writable copy of `source` (a file or a tree), both there."""

    def has_blob(self, sha256: str) -> bool:
        """Whether the host's cache holds the verified blob."""

    def put_blob(self, sha256: str, local: Path, advance=None) -> str:
        """Make the host's cache hold `local`'s bytes (sha256 known) as a blob, resumable and
        verified there. Returns "present" (nothing sent), "sent" or "resumed at N bytes"."""

    def download(self, url: str, display: str, sha256: str | None, headers: dict | None = None,
                 auth: tuple | None = None) -> str:
        """The host downloads `url` itself into its blobs (resumable, verified against sha256
        when given); returns the blob's sha256. `display` names it in messages (no secrets)."""

    def artifact_record(self, cache_path: str, fresh: bool = False) -> dict | None:
        """The record of an artifact complete in the host's cache at `cache_path`, else None.
        `fresh`: read on the host now, not taken from an earlier read of this command (an SSH
        host keeps what it read until it runs a command; the apply's check before it acts
        must see what others changed meanwhile)."""
