"""The line ENVCTL_SSH_TRACE=FILE gets for each ssh process envctl starts and each engine request
through a forwarded socket (envctl/remote/ssh.py trace says the kinds), written by the full path
and the quick paths alike (envctl/quick_status_remote.py, envctl/quick_up_remote.py), which must
not import ssh.py's dependencies: bench/bench_remote.py counts a command's round trips from them."""

from __future__ import annotations

import time
from typing import Sequence


def append(path: str, kind: str, destination: str, what: Sequence[str]) -> None:
    """Append `KIND DESTINATION @UNIXTIME WHAT` to the file at `path`, as one line."""
    line = f"{kind} {destination} @{time.time():.3f} {' '.join(what)[:200]}".replace("\n", " ") + "\n"
    with open(path, "a", encoding="utf-8") as out:  # O_APPEND: lines of parallel hosts stay whole
        out.write(line)
