"""Running envctl as a person at a terminal: a real pseudo-terminal as its stdin and stdout."""

from __future__ import annotations

import os
import pty
import select
import sys
import time


def in_terminal(args, environ: dict, send: bytes = b"", timeout: float = 60) -> bytes:
    """Run `envctl ARGS` on a new pseudo-terminal, type `send` once it had time to start, and
    return everything it printed until it exits (or `timeout`)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: envctl, attached to the terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "envctl", *args], environ)
    output, deadline = b"", time.monotonic() + timeout
    if send:
        time.sleep(1.5)
        os.write(fd, send)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        output += data
    os.waitpid(pid, 0)
    return output
