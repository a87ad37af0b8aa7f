"""envctl.interrupts.deferred: Ctrl-C held back for a block and handled when it ends, so that a
child process started inside is always known to the caller that must end it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest

from envctl.interrupts import deferred


@pytest.fixture(autouse=True)
def python_handles_sigint():
    """Python's own handler for SIGINT, whatever the test process inherited (a CI job started in
    the background inherits SIGINT ignored, and Python keeps it so)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigint_inside_the_block_is_raised_when_it_ends_not_before():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the signal")
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_sigint_nothing_is_raised_and_the_handler_is_put_back():
    with deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_previous_handler_is_the_one_called():
    called = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: called.append(signum))
    try:
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            assert called == []
        assert called == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_child_started_inside_gets_sigint_as_usual():
    """Neither blocked nor ignored in the child (an ssh started inside must die of Ctrl-C as ever):
    a caught signal is reset to its default by exec, a blocked one would stay blocked."""
    with deferred():
        status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True, check=True).stdout
    masks = {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines()
             if line.startswith(("SigBlk:", "SigIgn:"))}
    sigint_bit = 1 << (signal.SIGINT - 1)
    assert set(masks) == {"SigBlk", "SigIgn"} and not any(mask & sigint_bit for mask in masks.values()), masks


def test_on_another_thread_nothing_is_deferred_or_changed():
    seen = []

    def run():
        with deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
