"""The machine envctl runs on: probes below its root, and the writes `up` makes (the cache, the
workspaces, the engine named by DOCKER_HOST)."""

from __future__ import annotations

import glob as globlib
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from envctl.hosts.base import CommandResult
from envctl.regular_file import read_regular_text

# Where vendor tools live on accelerator hosts (cnmon in /usr/bin, npu-smi in /usr/local/bin,
# nvidia-smi in /usr/bin); looked up below the host root, not on the caller's PATH.
TOOL_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class LocalHost:
    name = "local"
    fetch_mode = None  # artifacts are fetched into this machine's cache, which is the host's
    cards = None  # no inventory entry: the manifest's cards (or --cards)

    def __init__(self, root: str = "/", environ: Mapping[str, str] | None = None):
        self.root = os.path.abspath(root)
        self._environ = environ  # None: os.environ, read when asked
        self._engine = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "LocalHost":
        return cls((os.environ if environ is None else environ).get("ENVCTL_HOST_ROOT") or "/", environ)

    def under_root(self, path: str) -> str:
        if self.root == "/":
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def read_text(self, path: str) -> str | None:
        try:
            return read_regular_text(path, errors="replace")  # /proc's and /sys's files are regular
        except OSError:
            return None

    def glob(self, pattern: str) -> list[str]:
        return sorted(globlib.glob(pattern))

    def is_char_device(self, path: str) -> bool:
        try:
            return stat.S_ISCHR(os.stat(path).st_mode)
        except OSError:
            return False

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def which(self, tool: str) -> str | None:
        for directory in TOOL_DIRS:
            candidate = self.under_root(os.path.join(directory, tool))
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return None

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError:
            return CommandResult(127, "", f"{argv[0]}: not found")
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"{argv[0]}: no answer within {timeout:.0f}s")
        except OSError as exc:
            return CommandResult(126, "", f"{argv[0]}: {exc.strerror}")
        return CommandResult(done.returncode, done.stdout, done.stderr)

    # -- writes (WritableHost) -------------------------------------------------------------
    @property
    def cache_root(self) -> str:
        from envctl.paths import cache_dir

        return str(cache_dir(self._environ))

    @property
    def workspace_root(self) -> str:
        from envctl.paths import workspace_dir

        return str(workspace_dir("-", self._environ).parent)

    @property
    def lock_dir(self) -> str:
        return os.path.join(self.cache_root, "locks")

    def environ(self) -> dict[str, str]:
        return {**(os.environ if self._environ is None else self._environ)}

    def engine(self):
        if self._engine is None:
            from envctl.engine import connect

            self._engine = connect(self._environ)
        return self._engine

    def docker_cli_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment for the docker CLI: this machine's own (DOCKER_HOST as it is)."""
        return dict(base)

    def engine_socket(self) -> str | None:
        from envctl.engine import local_socket

        return local_socket(self._environ)

    def image_loader(self):
        return None  # the engine reads the tarball from here (through engine_socket when it can)

    def mkdirs(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def make_workspace(self, path: str, mark: str) -> None:
        from envctl.paths import WORKSPACE_MARK

        self.mkdirs(path)
        marked = os.path.join(path, WORKSPACE_MARK)
        if (self.read_text(marked) or "").strip() != mark:  # written once: the quick record watches the directory
            self.write_file(marked, f"{mark}\n".encode())

    def write_file(self, path: str, data: bytes) -> None:
        from envctl.atomic import write_text_atomic

        write_text_atomic(Path(path), data.decode("utf-8"))

    def copy_tree(self, source: str, destination: str) -> None:
        target = Path(destination)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():
            shutil.copytree(source, target, symlinks=True, copy_function=_copy_writable)
        else:
            _copy_writable(source, target)

    def newest(self, directory: str, pattern: str) -> str | None:
        found = sorted(Path(directory).glob(pattern), key=lambda p: p.stat().st_mtime)
        return str(found[-1]) if found else None

    def stream(self, path: str, follow: bool, secrets: frozenset[str] = frozenset(), ended=None) -> int:
        from envctl.execute import print_file

        print_file(Path(path), follow, secrets, ended)
        return 0

    def free_bytes(self, path: str) -> int:
        from envctl.artifacts.cache import free_bytes

        return free_bytes(Path(path))

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=not os.path.exists(path))

    def log_writer(self, path: str):
        return None  # envctl.execute writes the log file here itself

    def has_blob(self, sha256: str) -> bool:
        return self._cache().has_blob(sha256)

    def put_blob(self, sha256: str, local: Path, advance=None) -> str:
        cache = self._cache()
        if cache.has_blob(sha256):
            return "present"
        from envctl.artifacts.cache import sha256_of
        from envctl.errors import FetchError

        staging = cache.partial(f"put:{sha256}")
        shutil.copyfile(local, staging)  # copied, not linked: the blob store is read-only, the original is not
        if sha256_of(staging) != sha256:
            staging.unlink(missing_ok=True)
            raise FetchError(f"{local} does not have the sha256 {sha256} it was given as; nothing was kept")
        cache.adopt(staging, sha256)
        if advance:
            advance(local.stat().st_size)
        return "sent"

    def download(self, url: str, display: str, sha256: str | None, headers: dict | None = None,
                 auth: tuple | None = None) -> str:
        from envctl.artifacts.download import Downloader, RemoteFile

        sha, _ = Downloader(self._cache()).fetch(RemoteFile("", url, display, None, sha256, headers=dict(headers or {}),
                                                            auth=auth))
        return sha

    def artifact_record(self, cache_path: str, fresh: bool = False) -> dict | None:  # always read: fresh
        import json

        if not os.path.exists(cache_path):
            return None
        try:
            return json.loads(read_regular_text(cache_path + ".json"))
        except (OSError, ValueError):
            return None

    def _cache(self):
        from envctl.artifacts.cache import Cache

        return Cache(Path(self.cache_root))


def _copy_writable(source, destination) -> None:
    """A copy the container may modify: the blob store's files are read-only (0444)."""
    shutil.copyfile(source, destination)
    os.chmod(destination, 0o644 | (os.stat(source).st_mode & 0o111))
