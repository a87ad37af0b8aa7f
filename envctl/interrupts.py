"""Ctrl-C for every thread of a command, not only the main one.

Python raises KeyboardInterrupt in the main thread alone. A command whose work runs on other
threads (`up --hosts`: each host's on a thread of its own; `up` on an SSH host: the artifacts
beside the image step) would otherwise go on after Ctrl-C: the ssh commands in flight die of the
SIGINT (they are in the terminal's process group), a push takes that for a dropped connection
and sends again, and the next step starts. envctl/cli.py installs `on_sigint`; from then on
nothing new is started on any thread (`check`: before each ssh command, envctl/remote/ssh.py,
and each engine request, envctl/engine.py), and the main thread exits with 130 without waiting
for the others (envctl/cli_remote.py runs hosts on daemon threads). What arrived stays where
it is: a push or download resumes from there, as after a dropped connection.

`check` knows of Ctrl-C as soon as the signal arrives, not only once the main thread has run
`on_sigint` (which Python does between two of the main thread's bytecodes, seconds later when
it waits in a call that is not interrupted): the C-level handler writes each signal's number to
the wakeup fd (signal.set_wakeup_fd), which `check` reads. An ssh killed by the same SIGINT
exits 255, as for a dropped connection, and a push's thread that saw it before the main thread
ran its handler would otherwise connect again."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

_interrupted = threading.Event()
_wakeup: int | None = None  # the read end of the wakeup fd's pipe, once installed
_streaming: set = set()  # child processes (subprocess.Popen) ended on Ctrl-C: ended_on_ctrl_c
_streaming_lock = threading.Lock()


def install() -> None:
    """Handle SIGINT as Python does (KeyboardInterrupt in the main thread), remembering it for
    `check`, and have its arrival written to a pipe `check` reads. Call from the main thread."""
    global _wakeup
    signal.signal(signal.SIGINT, on_sigint)
    if _wakeup is None:
        read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        _wakeup = read


def on_sigint(signum, frame) -> None:
    _interrupted.set()
    with _streaming_lock:
        for process in _streaming:
            _end(process)
    signal.default_int_handler(signum, frame)


@contextlib.contextmanager
def ended_on_ctrl_c(process):
    """While the block runs, Ctrl-C ends `process` (a subprocess.Popen: a push's ssh), from
    on_sigint, whichever thread is waiting on it: for a SIGINT sent to envctl alone (`timeout
    -s INT`, a supervisor) the ssh streams on otherwise, its thread blocked reading the host's
    first answer or writing, and the exit waits for it (Python joins a ThreadPoolExecutor's
    threads at exit). Raises KeyboardInterrupt at the start when Ctrl-C came before it, and in
    place of what the block raised after Ctrl-C (the ssh's end read as a failure)."""
    with _streaming_lock:
        _streaming.add(process)
    try:
        if _interrupted.is_set() or _arrived():  # came between the caller's check and the add
            _end(process)
            raise KeyboardInterrupt
        yield process
    except Exception:
        if _interrupted.is_set() or _arrived():  # the process ended by Ctrl-C: not its own failure
            raise KeyboardInterrupt from None
        raise
    finally:
        with _streaming_lock:
            _streaming.discard(process)


def _end(process) -> None:
    try:
        process.kill()  # what arrived stays where it is: the next run resumes from there
    except OSError:
        pass


def check() -> None:
    """Raise KeyboardInterrupt when Ctrl-C was pressed: called before starting anything new."""
    if _interrupted.is_set() or _arrived():
        raise KeyboardInterrupt


def _arrived() -> bool:
    """Whether the wakeup fd says SIGINT arrived (its handler then still to run or running)."""
    if _wakeup is None:
        return False
    try:
        said = os.read(_wakeup, 512)  # one byte per signal caught since the last read
    except (BlockingIOError, OSError):
        return False
    # A SIGINT is Ctrl-C only while on_sigint handles it: `exec` forwards it to its program, and
    # its own ssh commands that do so must not be refused (handled_by).
    if signal.SIGINT in said and signal.getsignal(signal.SIGINT) is on_sigint:
        _interrupted.set()
        return True
    return False


@contextlib.contextmanager
def handled_by(handler, signals=(signal.SIGINT, signal.SIGTERM)):
    """`handler(signum, frame)` in place of the usual handling of `signals` for the block (main
    thread only): `exec` forwards SIGINT and SIGTERM to the program it runs, a multi-node run
    stops its nodes. A SIGINT meanwhile is not Ctrl-C for `check`, during the block or after it
    (the wakeup fd's bytes of the block are dropped when it ends)."""
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)
        _drop_arrivals()


def _drop_arrivals() -> None:
    if _wakeup is None:
        return
    try:
        while os.read(_wakeup, 512):
            pass
    except OSError:  # BlockingIOError: nothing left
        pass


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
