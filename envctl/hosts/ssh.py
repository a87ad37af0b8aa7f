"""A lab server reached over SSH, seen through the same small interface as the local machine.

Probes cost one round trip each, and a host can be 50 ms away: a directory listing returns the
type of every entry at once (kept for the life of this object, which is one command), so
`is_char_device` on each /dev entry asks nothing more. Only POSIX sh and coreutils are needed
on the server, never Python or envctl.
"""

from __future__ import annotations

import posixpath
from typing import Sequence

from envctl.hosts.base import CommandResult
from envctl.hosts.local import TOOL_DIRS
from envctl.remote.ssh import SSHConnection

# Lists a glob's matches with a type letter each: c (character device), d, f, or - (other).
# The pattern arrives as $1 and is expanded unquoted on purpose (that is the glob); IFS is
# emptied so that only pathname expansion happens, never word splitting.
_LIST = 'IFS=; for p in $1; do if [ -c "$p" ]; then t=c; elif [ -d "$p" ]; then t=d; elif [ -f "$p" ]; then t=f; ' \
        'elif [ -e "$p" ]; then t=-; else continue; fi; printf "%s %s\\n" "$t" "$p"; done'


class SSHHost:
    def __init__(self, name: str, connection: SSHConnection, root: str = "/"):
        self.name = name
        self.connection = connection
        self.root = root or "/"
        self._types: dict[str, str] = {}  # path → type letter, from listings already made

    def under_root(self, path: str) -> str:
        if self.root == "/":
            return path
        return posixpath.join(self.root, path.lstrip("/"))

    def read_text(self, path: str) -> str | None:
        result = self.connection.run(["cat", "--", path])
        return result.stdout if result.returncode == 0 else None

    def glob(self, pattern: str) -> list[str]:
        result = self.connection.run(["sh", "-c", _LIST, "sh", pattern])
        found = []
        for line in result.stdout.splitlines():
            kind, _, path = line.partition(" ")
            self._types[path] = kind
            found.append(path)
        return sorted(found)

    def is_char_device(self, path: str) -> bool:
        if path not in self._types:
            self.glob(_literal(path))
        return self._types.get(path) == "c"

    def exists(self, path: str) -> bool:
        if path in self._types:
            return True
        return self.connection.run(["test", "-e", path]).returncode == 0

    def which(self, tool: str) -> str | None:
        candidates = [self.under_root(posixpath.join(d, tool)) for d in TOOL_DIRS]
        script = 'for p in "$@"; do if [ -f "$p" ] && [ -x "$p" ]; then printf "%s" "$p"; exit 0; fi; done; exit 1'
        result = self.connection.run(["sh", "-c", script, "sh", *candidates])
        return result.stdout if result.returncode == 0 and result.stdout else None

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        result = self.connection.run(argv, timeout=timeout)
        if result.returncode == 127 and "not found" in result.stderr:
            return CommandResult(127, "", f"{argv[0]}: not found")
        return result


def _literal(path: str) -> str:
    """A glob pattern that matches exactly `path` (its special characters bracketed)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)
