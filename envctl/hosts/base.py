"""What envctl needs from a machine, whichever way it is reached.

`root` is where probes look: "/" on a real host; a directory that mimics one (device nodes
under <root>/dev, driver files under <root>/proc, tools under <root>/usr/bin) to simulate an
accelerator host in tests and demos. Paths returned by `under_root` are real paths on that
machine, so Docker can be handed them (a simulated /dev/davinci0 is <root>/dev/davinci0).
"""

from __future__ import annotations

from dataclasses import dataclass
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

    def which(self, tool: str) -> str | None:
        """The tool's real path, looked up in the probed host's standard bin directories."""

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        """Run a command (an argument list, never a shell string)."""
