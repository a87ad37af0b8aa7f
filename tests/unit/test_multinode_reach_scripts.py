"""The master-port check's two scripts (envctl.multinode.reach), run by this machine's sh on
loopback with real sockets, once with python3 on PATH (the CPU reference image) and once with
BusyBox's applets alone (the test images: nc, timeout, no python), and with neither."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from envctl.multinode import reach

BUSYBOX = Path("/bin/busybox")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["python3", "busybox"])
def tools(request, tmp_path):
    """A PATH with only python3 (and sh), or only BusyBox's sh, nc, timeout, sleep, tail."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if request.param == "python3":
        (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))  # the interpreter itself, not a shim
        (bin_dir / "sh").symlink_to(os.path.realpath("/bin/sh"))
    else:
        if not BUSYBOX.exists():
            pytest.fail("a static /bin/busybox is needed (Debian: busybox-static)", pytrace=False)
        for applet in ("sh", "nc", "timeout", "sleep", "tail", "kill"):
            (bin_dir / applet).symlink_to(BUSYBOX)
    return request.param, str(bin_dir)


def _listen(path: str, port: int, want: int, seconds: float = 10) -> subprocess.Popen:
    return subprocess.Popen([f"{path}/sh", "-c", reach.LISTEN_SCRIPT, "sh", str(port), str(want), str(seconds)],
                            stdout=subprocess.PIPE, text=True, env={"PATH": path, "PY": reach._PY_LISTEN})


def _connect(path: str, address: str, port: int, seconds: float = 2) -> subprocess.CompletedProcess:
    return subprocess.run([f"{path}/sh", "-c", reach.CONNECT_SCRIPT, "sh", address, str(port), str(seconds)],
                          capture_output=True, text=True, timeout=30, env={"PATH": path, "PY": reach._PY_CONNECT})


def test_a_listener_takes_every_node_then_ends(tools):
    _, path = tools
    port = _free_port()
    listener = _listen(path, port, want=2)
    try:
        assert listener.stdout.readline().strip() == "listening"
        for _ in range(2):
            done = _connect(path, "127.0.0.1", port)
            assert (done.returncode, done.stdout.strip()) == (0, "connected"), done
        assert listener.wait(20) == 0
        assert [line.split()[0] for line in listener.stdout.read().splitlines()] == ["from", "from"]
    finally:
        listener.kill()
        listener.wait()


def test_a_port_nothing_listens_on_is_refused(tools):
    _, path = tools
    done = _connect(path, "127.0.0.1", _free_port())
    assert done.returncode == 4 and "refused" in done.stdout.lower(), done


def test_a_port_in_use_cannot_be_listened_on(tools):
    _, path = tools
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        listener = _listen(path, taken.getsockname()[1], want=1)
        first = listener.stdout.readline().strip()
        assert listener.wait(20) == 3
    assert first.startswith("bind-failed") and "in use" in first, first


def test_without_python_nc_or_bash_nothing_is_checked(tmp_path):
    # Debian's sh (dash): BusyBox's sh would find its own nc applet whatever PATH says
    (tmp_path / "sh").symlink_to(os.path.realpath("/bin/sh"))
    path = str(tmp_path)
    listener = _listen(path, _free_port(), want=1)
    assert listener.stdout.readline().strip() == "no-tool" and listener.wait(10) == reach.NO_TOOL
    done = _connect(path, "127.0.0.1", _free_port())
    assert done.returncode == reach.NO_TOOL and done.stdout.strip() == "no-tool"


def test_with_python_the_time_wait_stays_on_the_connecting_side(tools):
    """The python listener waits for the peer's FIN, so the master port itself is left without
    TIME_WAIT entries. (With nc both sides' stdin is empty and either may close first: no
    promise, so nothing asserted for it.)"""
    kind, path = tools
    port = _free_port()
    listener = _listen(path, port, want=1)
    assert listener.stdout.readline().strip() == "listening"
    assert _connect(path, "127.0.0.1", port).returncode == 0
    assert listener.wait(20) == 0
    waiting = [line.split() for line in subprocess.run(["ss", "-H", "-t", "-a", "-n", "state", "time-wait"],
                                                       capture_output=True, text=True, check=True).stdout.splitlines()]
    ours = [w for w in waiting if f":{port}" in " ".join(w[-2:])]  # local and peer address columns
    assert ours, waiting  # the connection did wait somewhere
    if kind == "python3":
        assert all(not w[-2].endswith(f":{port}") for w in ours), ours  # not on the master port


def test_a_master_port_a_previous_run_left_in_time_wait_is_not_in_use(tmp_path):
    """A launcher's store (torch's TCPStore) that closed its connections first leaves the master
    port in TIME_WAIT for about a minute; the python listener binds it anyway (SO_REUSEADDR, as
    the store itself does), so running again at once is not blocked as 'in use'."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    (bin_dir / "sh").symlink_to(os.path.realpath("/bin/sh"))
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.listen(1)
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the master's side closes first: its port keeps the TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    waiting = subprocess.run(["ss", "-H", "-t", "-a", "-n", "state", "time-wait"], capture_output=True, text=True,
                             check=True).stdout
    assert any(line.split()[-2].endswith(f":{port}") for line in waiting.splitlines()), waiting
    listener = _listen(str(bin_dir), port, want=1)
    assert listener.stdout.readline().strip() == "listening"
    assert _connect(str(bin_dir), "127.0.0.1", port).returncode == 0
    assert listener.wait(20) == 0
