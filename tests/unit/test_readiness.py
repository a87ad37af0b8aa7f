"""Readiness of detached servers: `ready:` in a manifest (refused at its file:line when it does
not fit the entrypoint), and the probes' output read (envctl/readiness.py).

The socket tables are the kernel's /proc/net/tcp and /proc/net/tcp6 as a container printed
them (Debian 12, Linux 6.1: python3 -m http.server bound to :: and to 127.0.0.1; format of
Documentation/networking/proc_net_tcp.rst); the HTTP answers are what the probe printed with
BusyBox 1.35 wget and Python 3.11's urllib in containers, and curl's -w '%{http_code}' (000
when no answer came)."""

import textwrap

import pytest

from envctl.errors import ManifestError
from envctl.manifest.loader import load
from envctl.readiness import Readiness, http_answer, listening, of_entrypoint

HEAD = """\
name: serve
description: readiness checks
device: {kind: cpu}
image: {ref: "busybox:1.36"}
entrypoints:
"""


def entrypoint(tmp_path, body):
    path = tmp_path / "manifest.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(body), "  "))
    return load(path, environ={}, roots=[]).manifest.entrypoints["web"]


def problems(tmp_path, body):
    with pytest.raises(ManifestError) as caught:
        entrypoint(tmp_path, body)
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def test_the_only_port_served_is_the_one_that_answers(tmp_path):
    web = entrypoint(tmp_path, """\
        web:
          run: vllm serve /models/qwen --port 8000
          ports: [8000]
          ready: {http: /health}
    """)
    assert of_entrypoint(web) == Readiness(8000, "/health", 120.0)
    assert of_entrypoint(web).describe() == "GET /health answers 2xx on port 8000"


def test_a_port_named_and_a_timeout(tmp_path):
    web = entrypoint(tmp_path, """\
        web:
          run: python -m fastchat.serve.controller
          ports: [21001, 8000]
          ready:
            port: 21001
            timeout: 600
    """)
    assert of_entrypoint(web) == Readiness(21001, None, 600.0)
    assert of_entrypoint(web).describe() == "port 21001 answers"


def test_ready_without_ports_names_its_port(tmp_path):
    web = entrypoint(tmp_path, "web: {run: streamlit run app.py, ready: {port: 8501, timeout: 2.5}}\n")
    assert of_entrypoint(web) == Readiness(8501, None, 2.5)


def test_no_ready_no_readiness(tmp_path):
    assert of_entrypoint(entrypoint(tmp_path, "web: {run: sleep 1, ports: [80]}\n")) is None


@pytest.mark.parametrize("body, line, path, message", [
    ("web: {run: x, ports: [8000, 9000], ready: {http: /health}}", 6, "entrypoints.web.ready",
     "say which port answers: ready.port (one of 8000, 9000)"),
    ("web: {run: x, ready: {}}", 6, "entrypoints.web.ready", "say which port answers: ready.port, or list it in ports"),
    ("web: {run: x, ports: [8000], ready: {port: 9000}}", 6, "entrypoints.web.ready",
     "ready.port 9000 is not one of the ports it serves (8000)"),
    ("web: {run: x, ports: [8000], ready: {port: 70000}}", 6, "entrypoints.web.ready.port", "70000 is not a port (1 to 65535)"),
    ("web: {run: x, ports: [8000], interactive: true, ready: {}}", 6, "entrypoints.web.ready",
     "an interactive entrypoint needs a terminal and cannot run detached; drop ready or interactive"),
    ("web: {run: x, ports: [8000], ready: {http: health}}", 6, "entrypoints.web.ready.http",
     "'health' is not an HTTP path (it starts with / and holds no spaces; the host and port are the container's and ready.port)"),
    ("web: {run: x, ports: [8000], ready: {http: 'http://127.0.0.1:8000/health'}}", 6, "entrypoints.web.ready.http",
     None),
    ("web: {run: x, ports: [8000], ready: {http: '/a b'}}", 6, "entrypoints.web.ready.http", None),
    ("web: {run: x, ports: [8000], ready: {timeout: '60'}}", 6, "entrypoints.web.ready.timeout", "expected a number, got text ('60')"),
    ("web: {run: x, ports: [8000], ready: {timeout: 0}}", 6, "entrypoints.web.ready.timeout", None),
    ("web: {run: x, ports: [8000], ready: {timeout: -5}}", 6, "entrypoints.web.ready.timeout", None),
    ("web: {run: x, ports: [8000], ready: {tmeout: 5}}", 6, "entrypoints.web.ready.tmeout",
     "unknown key 'tmeout' (did you mean 'timeout'?)"),
    ("web: {run: x, ports: [8000], ready: 8000}", 6, "entrypoints.web.ready", None),
])
def test_ready_that_does_not_fit_is_refused_at_its_line(tmp_path, body, line, path, message):
    found = problems(tmp_path, body + "\n")
    assert [(l, p) for l, p, _ in found] == [(line, path)], found
    if message is not None:
        assert found[0][2] == message


IPV4_LOOPBACK_8001 = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5821110 1 000000001b068799 100 0 0 10 0
   1: 0100007F:1F41 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 5821999 1 000000001b068799 100 0 0 10 0
"""
IPV6_ANY_8000 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5821656 1 000000002326cd8c 100 0 0 10 0
"""
FD_8000 = "lrwx------ 1 root root 64 Nov 30 19:23 3 -> socket:[5821656]\nlr-x------ 1 root root 64 Nov 30 19:23 0 -> /dev/null\n"
FD_8001 = "lrwx------ 1 root root 64 Nov 30 19:23 3 -> socket:[5821110]\n"


def table(tcp=IPV4_LOOPBACK_8001, tcp6=IPV6_ANY_8000, processes=(), no_ls=False) -> str:
    """PORT_SCRIPT's output: processes are (pid, stat line, fd listing)."""
    out = "\x1enols\n" if no_ls else ""
    out += f"\x1enet\n{tcp}\x1enet\n{tcp6}"
    for pid, stat, fds in processes:
        out += f"\x1eproc {pid}\n{stat}\n{fds}"
    return out


def stat(pid, session, comm="python3"):
    return f"{pid} ({comm}) S 1 {session} {session} 0 -1 4194560 1016 0 7 0 0 1 0 0 20 0 1 0 2341656 2654208 376"


def test_a_wildcard_ipv6_listener_of_the_run_is_asked_through_the_ipv4_loopback():
    out = table(processes=[(14, stat(14, 14), FD_8000), (15, stat(15, 15), FD_8001)])
    found = listening(out, 8000, session=14)
    assert found.address == "127.0.0.1" and found.owned is True


def test_a_loopback_listener_is_asked_there():
    out = table(processes=[(15, stat(15, 15), FD_8001)])
    assert listening(out, 8001, session=15).address == "127.0.0.1"


def test_a_listener_of_another_process_is_not_the_run():
    """Under network: host the container sees every socket of the host's namespace."""
    out = table(processes=[(14, stat(14, 14), FD_8000), (15, stat(15, 15), FD_8001)])
    assert listening(out, 8001, session=14) is None


def test_a_child_of_the_run_counts_and_a_comm_with_parentheses_is_read():
    out = table(processes=[(14, stat(14, 14, "sh"), ""), (20, stat(20, 14, "uvicorn) (worker 1"), FD_8000)])
    assert listening(out, 8000, session=14).owned is True


def test_an_established_connection_is_not_a_listener():
    out = table(tcp=IPV4_LOOPBACK_8001.replace(" 0A ", " 01 "), processes=[(15, stat(15, 15), FD_8001)])
    assert listening(out, 8001, session=15) is None


def test_nothing_on_the_port():
    assert listening(table(processes=[(14, stat(14, 14), FD_8000)]), 9000, session=14) is None


def test_without_ls_any_listener_on_the_port_counts():
    found = listening(table(no_ls=True, processes=[(14, stat(14, 14), "")]), 8000, session=14)
    assert found.address == "127.0.0.1" and found.owned is None


@pytest.mark.parametrize("ip_hex, url_host", [
    ("020011AC", "172.17.0.2"),  # a server bound to the container's bridge address only
    ("00000000", "127.0.0.1"),
    ("00000000000000000000000001000000", "[::1]"),
    ("0000000000000000FFFF0000020011AC", "172.17.0.2"),  # IPv4-mapped
    ("B80D0120000000000000000001000000", "[2001:db8::1]"),
])
def test_the_address_asked_follows_the_listener(ip_hex, url_host):
    line = f"   0: {ip_hex}:1F40 {'0' * len(ip_hex)}:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0\n"
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    key = "tcp6" if len(ip_hex) == 32 else "tcp"
    out = table(**{key: header + line, ("tcp" if key == "tcp6" else "tcp6"): header},
                processes=[(9, stat(9, 9), "lrwx------ 1 root root 64 Nov 30 19:23 3 -> socket:[77]\n")])
    assert listening(out, 8000, session=9).address == url_host


@pytest.mark.parametrize("output, tool, status, ok, said", [
    ("wget 200\n\n", "wget", 200, True, "answered 200"),
    ("wget 404\n\n", "wget", 404, False, "answered 404"),
    ("wget \n", "wget", None, False, "no answer"),  # refused: BusyBox printed no status line
    ("curl 204\n", "curl", 204, True, "answered 204"),
    ("curl 503\n", "curl", 503, False, "answered 503"),
    ("curl 000\n", "curl", None, False, "no answer"),
    ("python3 200\n", "python3", 200, True, "answered 200"),
    ("python3 500\n", "python3", 500, False, "answered 500"),
    ("python3 URLError\n", "python3", None, False, "no answer (URLError)"),
    ("none\n", None, None, False, "the image has none of curl, wget, python3 to ask it"),
])
def test_http_answers_read(output, tool, status, ok, said):
    answer = http_answer(output)
    assert (answer.tool, answer.status, answer.ok, answer.describe()) == (tool, status, ok, said)


# `envctl logs ARG`: ARG was the environment; it is now also an entrypoint, when it names no
# environment (`logs web -f`, as `logs -e web -f`). On the in-memory engine (tests/fake_engine.py).

from fake_engine import FakeEngine  # noqa: E402
from envctl.cli_runs import _env_or_entrypoint  # noqa: E402
from envctl.containers import LABEL_MANIFEST  # noqa: E402
from envctl.errors import EnvctlError  # noqa: E402


@pytest.fixture
def two_environments():
    engine = FakeEngine()
    engine.add_container("envctl-web-demo", {LABEL_MANIFEST: "web-demo"})
    engine.add_container("envctl-chat", {LABEL_MANIFEST: "chat"})
    return engine


@pytest.mark.parametrize("positional, entrypoint, env_option, chosen", [
    ("web-demo", None, None, ("web-demo", None)),  # a manifest name: the environment, as before
    ("envctl-chat", "web", None, ("envctl-chat", "web")),  # logs ENV -e ENTRY, as before
    ("web", None, None, (None, "web")),  # names no environment: the entrypoint of the only one
    ("web", None, "envctl-web-demo", ("envctl-web-demo", "web")),  # logs ENTRY --env ENV
    (None, "web", "envctl-chat", ("envctl-chat", "web")),  # logs -e ENTRY --env ENV
    (None, None, None, (None, None)),
])
def test_the_logs_argument_is_an_environment_or_an_entrypoint(two_environments, positional, entrypoint, env_option, chosen):
    assert _env_or_entrypoint(two_environments, positional, entrypoint, env_option) == chosen


def test_the_entrypoint_given_twice_is_refused(two_environments):
    with pytest.raises(EnvctlError) as caught:
        _env_or_entrypoint(two_environments, "web", "web", "envctl-chat")
    assert caught.value.exit_code == 2


# Where a detached server is reached, from the engine's inspect of its container (Docker 20.10's
# shapes: HostConfig.NetworkMode, NetworkSettings.Ports bindings for IPv4 and IPv6, Networks).

from envctl.cli_serve import where_served  # noqa: E402


def inspected(mode, ports=None, networks=None):
    return {"HostConfig": {"NetworkMode": mode}, "NetworkSettings": {"Ports": ports or {}, "Networks": networks or {}}}


@pytest.mark.parametrize("attrs, host, said", [
    (inspected("default", {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}, {"HostIp": "::", "HostPort": "18080"}]},
               {"bridge": {"IPAddress": "172.17.0.3"}}), None,
     "port 8000 published at 0.0.0.0:18080, :::18080 of this machine"),
    (inspected("bridge", {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]}), "lab1",
     "port 8000 published at 127.0.0.1:8000 of lab1"),
    (inspected("host"), "lab1", "port 8000 of lab1 (host network)"),
    (inspected("none"), None, "http://127.0.0.1:8000 inside the container only (network none)"),
    (inspected("default", {"8000/tcp": None}, {"bridge": {"IPAddress": "172.17.0.3"}}), None,
     "http://127.0.0.1:8000 inside the container; from the engine's host at 172.17.0.3:8000 (bridge network); "
     "not published (container.ports publishes it)"),
    (inspected("default"), None, "http://127.0.0.1:8000 inside the container; not published (container.ports publishes it)"),
])
def test_where_a_server_is_reached(attrs, host, said):
    assert where_served(attrs, 8000, "127.0.0.1", host) == said


# A server that listens on the loopback only answers the readiness check (asked inside the
# container) and nobody outside: said, with what does not reach it.

from envctl.cli_serve import loopback_caveat  # noqa: E402

IPV4_ANY_8001 = IPV4_LOOPBACK_8001.replace("0100007F:1F41 00000000", "00000000:1F41 00000000").replace(" 5821110 ", " 5821111 ")


@pytest.mark.parametrize("tcp, tcp6, fds, loopback, address", [
    (IPV4_LOOPBACK_8001, "", FD_8001, True, "127.0.0.1"),  # --bind 127.0.0.1
    (IPV4_ANY_8001, "", FD_8001.replace("5821110", "5821111"), False, "127.0.0.1"),  # 0.0.0.0
    # ::1 only (an IPv6 loopback), and :: (every address).
    ("", IPV6_ANY_8000.replace("00000000000000000000000000000000:1F40 0", "00000000000000000000000001000000:1F41 0"),
     FD_8000, True, "[::1]"),
    ("", IPV6_ANY_8000.replace(":1F40 ", ":1F41 ", 1), FD_8000, False, "127.0.0.1"),
    # 127.0.0.1 and 0.0.0.0 both (two sockets of the run): reached from outside.
    (IPV4_LOOPBACK_8001 + IPV4_ANY_8001.split("\n", 1)[1], "", FD_8001 + FD_8001.replace("5821110", "5821111"), False,
     "127.0.0.1"),
    # An IPv4-mapped loopback on an IPv6 socket.
    ("", IPV6_ANY_8000.replace("00000000000000000000000000000000:1F40 0", "0000000000000000FFFF00000100007F:1F41 0"),
     FD_8000, True, "127.0.0.1"),
])
def test_a_listener_on_the_loopback_only_is_told_apart(tcp, tcp6, fds, loopback, address):
    found = listening(table(tcp=tcp, tcp6=tcp6, processes=[(15, stat(15, 15), fds)]), 8001, session=15)
    assert found is not None and (found.loopback, found.address) == (loopback, address)


@pytest.mark.parametrize("attrs, host, said", [
    (inspected("default", {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]}, {"bridge": {"IPAddress": "172.17.0.3"}}),
     None, "listens on 127.0.0.1:8000 only, inside the container: the published port does not reach it"),
    (inspected("default", {}, {"bridge": {"IPAddress": "172.17.0.3"}}), None,
     "listens on 127.0.0.1:8000 only, inside the container: the container's address does not reach it"),
    (inspected("host"), "lab1", "listens on 127.0.0.1:8000 only: only lab1 itself reaches it (host network)"),
    (inspected("host"), None, "only this machine itself reaches it (host network)"),
    (inspected("none"), None, None),  # nothing outside reaches it anyway
])
def test_what_a_loopback_only_server_is_not_reached_from(attrs, host, said):
    from envctl.readiness import Listening

    caveat = loopback_caveat(attrs, 8000, Listening("127.0.0.1", True, loopback=True), host)
    assert (caveat is None) if said is None else (said in caveat and "0.0.0.0" in caveat), caveat
    assert loopback_caveat(attrs, 8000, Listening("127.0.0.1", True, loopback=False), host) is None
    assert loopback_caveat(attrs, 8000, None, host) is None


# How a detached run that ended before it was ready is told: a signal by name, a hint that fits.

from envctl import detach  # noqa: E402


@pytest.mark.parametrize("code, said, hint", [
    (3, "exit code 3", "the log's last lines are above"),
    (143, "exit code 143: SIGTERM", "told to end while starting"),  # `envctl stop` while exec --detach waits
    (130, "exit code 130: SIGINT", "told to end while starting"),
    (137, "exit code 137: SIGKILL", "out-of-memory killer"),
    (0, "exit code 0", "daemon"),
    (255, "exit code 255", "the log's last lines are above"),
])
def test_a_run_that_ended_is_told_by_its_signal(code, said, hint):
    assert detach.ended_by(code) == said
    assert hint in detach._ended_hint(code)


def test_an_empty_log_is_not_pointed_at():
    assert "above" not in detach._ended_hint(1, empty_log=True)
    assert "without --detach" in detach._ended_hint(1, empty_log=True)


def test_a_detached_runs_log_never_replaces_another_runs_of_the_same_second(tmp_path):
    """The log is named to the second; a detached run's is written anew on the host, so a log
    already there (a foreground run, a detached one that ended at once) gets a -2, -3... beside it."""
    from pathlib import Path

    from envctl.cli_serve import fresh_log
    from envctl.hosts.local import LocalHost

    host, wanted = LocalHost(environ={}), tmp_path / "logs" / "web-20261130T192532Z.log"
    assert fresh_log(host, wanted) == str(wanted)
    wanted.parent.mkdir()
    wanted.write_text("the first run's output\n")
    second = fresh_log(host, wanted)
    assert second == str(tmp_path / "logs" / "web-20261130T192532Z-2.log")
    Path(second).write_text("")
    assert fresh_log(host, wanted) == str(tmp_path / "logs" / "web-20261130T192532Z-3.log")
    assert wanted.read_text() == "the first run's output\n"
