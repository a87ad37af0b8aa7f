"""The parts of `status --host`'s quick path (envctl/quick_status_remote.py,
envctl/remote/live_master.py) that copy the full path instead of importing it: which arguments
it answers, the names of the master socket, of the forward and of the control directory
(envctl/remote/ssh.py), which inventory file it reads (envctl/remote/inventory.py), the key of
a kept reading; and its pipelined requests on a real engine. tests/remote/test_quick_status_remote.py
runs both paths on the SSH lab."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from envctl import quick_status_remote as quick
from envctl import engine_socket
from envctl.engine_socket import EngineUnanswered
from envctl.remote import live_master
from envctl.remote.inventory import inventory_path
from envctl.remote.ssh import SSHConnection, SSHSettings, _control_dir


def test_the_options_answered_and_those_left_to_the_full_path():
    assert quick.parse(["--host", "lab1"]) == (("lab1",), None, None)
    assert quick.parse(["-H", "a,b", "--hosts=c", "--ssh-config", "/c", "--inventory=/i"]) == (("a,b", "c"), "/c", "/i")
    for refused in (["--host"], ["--json", "--host", "lab1"], ["--host", "lab1", "--accept-host-key", "SHA256:x"],
                    ["--ssh-config", "/c"], ["--host", "-x"], ["--host="], ["--host", "lab1", "extra"],
                    ["--inventory", "/a", "--inventory", "/b", "--host", "lab1"], ["-Hlab1"], ["--host", "lab1", "--"],
                    ["--hos", "lab1"]):
        assert quick.parse(refused) is None, refused


@pytest.mark.parametrize("config", [None, "/etc/envctl/ssh_config"])
def test_the_master_and_the_forward_are_named_as_ssh_py_names_them(tmp_path, config):
    settings = SSHSettings(config=config, control_dir=str(tmp_path))
    connection = SSHConnection("root@lab1", settings)
    assert connection.control_path == str(tmp_path / live_master.control_name("root@lab1", config))
    local = tmp_path / live_master.forward_name("root@lab1", config, "/run/docker.sock")
    with socket.socket(socket.AF_UNIX) as listening:  # a forward that answers: forward_socket starts no ssh
        listening.bind(str(local))
        listening.listen()
        assert connection.forward_socket("/run/docker.sock") == str(local)


@pytest.fixture
def short_dir():
    """A directory under /tmp whose sockets' paths stay within AF_UNIX's 108 bytes (pytest's
    tmp_path is longer under pytest-xdist: .../popen-gw0/test_NAME0)."""
    made = Path(tempfile.mkdtemp(prefix="qs-", dir="/tmp"))
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.mark.parametrize("name", ["control", "con trol", "con;trol", "contrôle", "con#trol", "con?trol"])
def test_a_forward_is_taken_only_where_docker_py_reaches_it(short_dir, name):
    """The full path hands docker-py unix://FORWARD: where docker-py refuses it or reads another
    path (a `#` or `?` in the control directory's name), the quick path must not answer."""
    from docker.errors import DockerException
    from docker.utils.utils import parse_host

    directory = short_dir / name
    directory.mkdir(mode=0o700)
    master = directory / live_master.control_name("lab1", None)
    local = directory / live_master.forward_name("lab1", None, "/run/docker.sock")
    listening = []
    for path in (master, local):
        listening.append(socket.socket(socket.AF_UNIX))
        listening[-1].bind(str(path))
        listening[-1].listen()
    try:
        (directory / f"{master.name}.facts").write_text('{"home": "/root", "docker_host": "unix:///run/docker.sock"}')
        try:
            reached = parse_host(f"unix://{local}") == f"http+unix://{local}"
        except DockerException:
            reached = False
        found = live_master.forwarded_engine("lab1", None, str(directory))
        assert found == (str(local) if reached else None)
    finally:
        for made in listening:
            made.close()
    assert name not in ("con#trol", "con?trol") or not reached


def test_the_control_directory_is_ssh_pys_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVCTL_SSH_CONTROL_DIR", raising=False)
    made = _control_dir(SSHSettings())  # made there by ssh.py, 0700 (first: on a new machine it is not there yet)
    assert live_master.control_directory({}) == made
    given = tmp_path / "control"
    assert live_master.control_directory({"ENVCTL_SSH_CONTROL_DIR": str(given)}) is None  # not made yet
    given.mkdir(mode=0o700)
    assert live_master.control_directory({"ENVCTL_SSH_CONTROL_DIR": str(given)}) == str(given)
    monkeypatch.chdir(tmp_path)  # relative: the full path's forward is no socket docker-py finds
    assert live_master.control_directory({"ENVCTL_SSH_CONTROL_DIR": "control"}) is None
    linked = tmp_path / "linked"
    linked.symlink_to(given)  # the full path makes and uses its masters through the link
    assert live_master.control_directory({"ENVCTL_SSH_CONTROL_DIR": str(linked)}) == str(linked)
    given.chmod(0o755)  # another user could have put a socket there
    assert live_master.control_directory({"ENVCTL_SSH_CONTROL_DIR": str(given)}) is None
    assert live_master.control_directory({"ENVCTL_SSH_CONTROL_DIR": str(linked)}) is None
    given.chmod(0o700)
    assert os.getuid() == 0, "the suite runs as root (make test): giving a directory away needs it"
    os.lchown(linked, 12345, -1)  # a link another user could point elsewhere
    assert live_master.control_directory({"ENVCTL_SSH_CONTROL_DIR": str(linked)}) is None
    os.chown(given, 12345, -1)
    assert live_master.control_directory({"ENVCTL_SSH_CONTROL_DIR": str(given)}) is None


def test_the_inventory_read_is_the_full_paths(tmp_path):
    home = tmp_path / "home"
    environs = [{"HOME": str(home)}, {"HOME": str(home), "ENVCTL_INVENTORY": "~/mine.yaml"},
                {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}, {}]
    for given in (None, "/srv/inventory.yaml", "~/given.yaml", "relative.yaml"):
        for environ in environs:
            expected = inventory_path(given, environ)
            assert quick.inventory_file(given, environ) == (None if expected is None else str(expected)), (given, environ)
    (home / ".config" / "envctl").mkdir(parents=True)
    (home / ".config" / "envctl" / "inventory.yaml").write_text("hosts: {}\n")
    assert quick.inventory_file(None, environs[0]) == str(inventory_path(None, environs[0]))


def test_a_kept_reading_of_the_inventory_is_keyed_by_its_bytes_path_and_the_names(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts: {lab1: {ssh: a}}\n")
    environ = {"ENVCTL_INVENTORY": str(inventory), "HOME": str(tmp_path)}
    wanted = quick.Wanted(("lab1",), None, None)
    key = quick.inventory_key(wanted, environ)
    assert key == quick.inventory_key(wanted, dict(environ))
    assert key != quick.inventory_key(quick.Wanted(("lab2",), None, None), environ)
    copy = tmp_path / "copy.yaml"
    copy.write_bytes(inventory.read_bytes())
    assert quick.inventory_key(wanted._replace(inventory=str(copy)), environ) not in (key, None)
    assert quick.inventory_key(wanted._replace(inventory=str(tmp_path / "missing.yaml")), environ) is None
    inventory.write_text("hosts: {lab1: {ssh: b}}\n")  # same size, other bytes
    assert quick.inventory_key(wanted, environ) not in (key, None)
    assert quick.inventory_key(wanted, {"HOME": str(tmp_path)}) not in (key, None)  # no inventory at all


def test_an_inventory_that_is_not_a_regular_file_is_left_unread_to_the_full_path(tmp_path):
    """`--inventory <(...)` is a pipe: its bytes come once, and the full path must get them all."""
    control = tmp_path / "control"
    control.mkdir(mode=0o700)
    text = b"hosts: {lab1: {ssh: root@10.0.0.1}}\n"
    readable, writable = os.pipe()
    try:
        os.write(writable, text)
        os.close(writable)
        piped = f"/dev/fd/{readable}"
        environ = {"HOME": str(tmp_path), "ENVCTL_SSH_CONTROL_DIR": str(control)}
        assert quick.answer(["--host", "lab1", "--inventory", piped], environ) is None
        assert quick.answer(["--host", "lab1"], {**environ, "ENVCTL_INVENTORY": piped}) is None
        assert os.read(readable, 1024) == text  # all of it still there for the full path
    finally:
        os.close(readable)
    fifo = tmp_path / "inventory.fifo"
    os.mkfifo(fifo)  # opening it would wait for a writer: never opened here
    assert quick.inventory_key(quick.Wanted(("lab1",), None, str(fifo)), {"HOME": str(tmp_path)}) is None


def test_a_kept_reading_is_taken_and_a_new_one_kept(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts: {lab1: {ssh: root@10.0.0.1}}\n")
    environ = {"ENVCTL_INVENTORY": str(inventory), "HOME": str(tmp_path)}
    wanted = quick.Wanted(("lab1",), None, None)
    assert quick._host(wanted, environ, str(tmp_path)) == ("lab1", "root@10.0.0.1")
    kept = tmp_path / quick.HOSTS_KEPT
    assert kept.exists()
    inventory.write_text("hosts: {lab1: {ssh: root@10.0.0.2}}\n")
    assert quick._host(wanted, environ, str(tmp_path)) == ("lab1", "root@10.0.0.2")
    inventory.write_text("hosts: {lab1: {fetch: sometimes}}\n")  # a problem: the full path says it
    assert quick._host(wanted, environ, str(tmp_path)) is None
    inventory.write_text("hosts: {lab1: {}}\ngroups: {lab: [lab1]}\n")
    assert quick._host(quick.Wanted(("labs",), None, None), environ, str(tmp_path)) is None  # warned: like a group
    assert quick._host(quick.Wanted(("lab",), None, None), environ, str(tmp_path)) == ("lab1", "lab1")
    assert quick._host(quick.Wanted(("lab1,lab2",), None, None), environ, str(tmp_path)) is None  # two hosts


def test_pipelined_requests_are_answered_in_order_on_one_connection():
    path = "/var/run/docker.sock"
    if not os.path.exists(path):
        pytest.fail("the host's Docker engine is down: `make engine`")
    with engine_socket.Pipelined(path) as engine:
        answers = engine.get([("/version", None), ("/containers/envctl-no-such-container/json", None),
                              ("/version", {"unused": "1"})])
        assert [status for status, _ in answers] == [200, 404, 200]
        assert answers[0][1]["ApiVersion"] and answers[0] == answers[2]
        assert "no-such-container" in answers[1][1]["message"]
        assert engine.get([("/version", None)]) == answers[:1]  # the same connection, again
    with pytest.raises(EngineUnanswered), engine_socket.Pipelined("/nonexistent/docker.sock") as nowhere:
        nowhere.get([("/version", None)])


def test_an_engine_silent_for_longer_than_the_quick_paths_wait_is_left_to_the_full_path(tmp_path):
    """A hung engine (or a host cut off behind a master that has not noticed yet) costs the quick
    path about SILENCE, not the engine socket's long timeout: this one answers, correctly, but
    only after three times SILENCE (unless the quick path hung up before)."""
    path = str(tmp_path / "engine.sock")
    body = b"[]"
    late = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n" + body)
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(path)
    listening.listen()
    closed = threading.Event()

    def engine():
        connection, _ = listening.accept()
        with connection:
            connection.recv(65536)  # the request
            connection.settimeout(3 * quick.SILENCE)
            try:
                if connection.recv(65536) == b"":
                    closed.set()  # the quick path hung up
                    return
            except TimeoutError:
                pass
            connection.sendall(late)

    answering = threading.Thread(target=engine)
    answering.start()
    try:
        with pytest.raises(EngineUnanswered), engine_socket.Pipelined(path, silence=quick.SILENCE) as silent:
            silent.get([("/containers/json", None)])
    finally:
        answering.join(10)
        listening.close()
    assert closed.is_set()
