"""envctl.interrupts.check on a thread other than the main one knows of Ctrl-C as soon as SIGINT
arrives, not only once the main thread has run its Python handler: a push's thread that sees
its ssh killed by the same SIGINT (exit 255, as a dropped connection) must not connect again
while the main thread is still inside a long call."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, signal, subprocess, threading, time, zlib
    from envctl import interrupts

    interrupts.install()
    seen = []

    def pushing():  # as a push's retry loop: check before each new connection
        while True:
            try:
                interrupts.check()
            except KeyboardInterrupt:
                seen.append(time.monotonic())
                return
            time.sleep(0.001)

    threading.Thread(target=pushing, daemon=True).start()
    data = os.urandom(48 << 20)
    # SIGINT from outside while the main thread is inside one C call that releases the GIL and
    # never looks at signals (~2 s of zlib): its Python handler runs only when the call returns.
    subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -INT {os.getpid()}"])
    try:
        zlib.compress(data, 9)
    except KeyboardInterrupt:
        pass  # the handler, once the call returned
    returned = time.monotonic()
    time.sleep(0.2)
    print("seen before the main thread returned" if seen and seen[0] < returned else f"seen={seen}")
""")


def test_a_thread_sees_ctrl_c_while_the_main_thread_is_in_a_long_call():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "seen before the main thread returned", (done.stdout, done.stderr)


FORWARDED = textwrap.dedent("""
    import os, signal, time
    from envctl import interrupts

    interrupts.install()
    forwarded = []
    with interrupts.handled_by(lambda signum, frame: forwarded.append(signum)):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        try:
            interrupts.check()  # as the ssh command that forwards it runs
            during = "ok"
        except KeyboardInterrupt:
            during = "refused"
    try:
        interrupts.check()
        after = "ok"
    except KeyboardInterrupt:
        after = "refused"
    print(forwarded == [signal.SIGINT], during, after)
""")


def test_a_sigint_handled_elsewhere_is_not_ctrl_c_for_check():
    """`exec` forwards SIGINT to its program with an ssh command (interrupts.handled_by): the
    wakeup fd's byte of that SIGINT must not make check() refuse that command, nor a later one."""
    done = subprocess.run([sys.executable, "-c", FORWARDED], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "ok", "ok"], (done.stdout, done.stderr)
