"""The machine envctl runs on."""

from __future__ import annotations

import glob as globlib
import os
import stat
import subprocess
from typing import Mapping, Sequence

from envctl.hosts.base import CommandResult

# Where vendor tools live on accelerator hosts (cnmon in /usr/bin, npu-smi in /usr/local/bin,
# nvidia-smi in /usr/bin); looked up below the host root, not on the caller's PATH.
TOOL_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class LocalHost:
    name = "local"

    def __init__(self, root: str = "/"):
        self.root = os.path.abspath(root)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "LocalHost":
        environ = os.environ if environ is None else environ
        return cls(environ.get("ENVCTL_HOST_ROOT") or "/")

    def under_root(self, path: str) -> str:
        if self.root == "/":
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def read_text(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
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
