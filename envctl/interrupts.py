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

import contextlib
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


@contextlib.contextmanager
def deferred():
    """Ctrl-C (SIGINT) held back for the block, then handled as it would have been (the previous
    handler called; KeyboardInterrupt with Python's own). For starting child processes that a
    `finally` must be able to end: raised inside subprocess.Popen, after its fork and before it
    returns, KeyboardInterrupt would leave a child running that no caller knows of. On a thread
    other than the main one (where no handler can be set) nothing is deferred."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: arrived.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if arrived:
            if callable(previous):
                previous(signal.SIGINT, arrived[0])
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt
