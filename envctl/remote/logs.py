"""`logs --host`: the newest matching log in a remote workspace, printed (and followed) here."""

from __future__ import annotations

import subprocess
import sys

from envctl.errors import EXIT_NOT_FOUND, EnvctlError
from envctl.hosts.ssh import SSHHost

# $1 the logs directory, $2 a file-name pattern: the newest match, or nothing.
_NEWEST = 'cd "$1" 2>/dev/null || exit 0; ls -1t -- $2 2>/dev/null | head -n 1'


def print_remote_log(target: SSHHost, directory: str, pattern: str, follow: bool) -> int:
    newest = target.connection.run(["sh", "-c", _NEWEST, "sh", directory, pattern]).stdout.strip()
    if not newest:
        raise EnvctlError(f"no logs yet in {directory} on {target.name}", exit_code=EXIT_NOT_FOUND)
    path = f"{directory}/{newest}"
    argv = ["tail", "-n", "+1", "-f", "--", path] if follow else ["cat", "--", path]
    # Streamed straight to our stdout: a log can be large, and -f never ends on its own.
    return subprocess.call(target.connection.command(argv), stdout=sys.stdout.buffer, stdin=subprocess.DEVNULL)
