"""Ctrl-C for every thread of a command, not only the main one.

Python raises KeyboardInterrupt in the main thread alone. A command whose work runs on other
threads (`up --hosts`: each host's on a thread of its own; `up` on an SSH host: the artifacts
beside the image step) would otherwise go on after Ctrl-C: the ssh commands in flight die of the
SIGINT (they are in the terminal's process group), a push takes that for a dropped connection
and sends again, and the next step starts. envctl/cli.py installs `on_sigint`; from then on
nothing new is started on any thread (`check`: before each ssh command, envctl/remote/ssh.py,
and each engine request, envctl/engine.py), and the main thread exits with 130 without waiting
for the others (envctl/cli_remote.py runs hosts on daemon threads). What arrived stays where
it is: a push or download resumes from there, as after a dropped connection."""

from __future__ import annotations

import signal
import threading

_interrupted = threading.Event()


def install() -> None:
    """Handle SIGINT as Python does (KeyboardInterrupt in the main thread), remembering it for
    `check`. Call from the main thread."""
    signal.signal(signal.SIGINT, on_sigint)


def on_sigint(signum, frame) -> None:
    _interrupted.set()
    signal.default_int_handler(signum, frame)


def check() -> None:
    """Raise KeyboardInterrupt when Ctrl-C was pressed: called before starting anything new."""
    if _interrupted.is_set():
        raise KeyboardInterrupt
