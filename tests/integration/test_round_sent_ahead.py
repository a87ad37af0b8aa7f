"""The plan's first engine round sent ahead, behind /version on one connection (SSHHost.ask_ahead:
envctl/engine_socket.py Pipelined.send and read), and taken by the plan's first round
(observe_engine._Rounds) only when it asks exactly those requests in the API version /version
answered; otherwise the answers sent for are read and left, and the round is asked as it would
have been. On a real engine's unix socket (both engines), where the SSH host's side is played by
the same calls it makes; through a lab host's forward: tests/remote/test_remote_round_ahead.py."""

from __future__ import annotations

import pytest

from envctl import engine_socket
from envctl.observe_engine import _Rounds, first_round

pytestmark = pytest.mark.both_engines

REF = "envctl-it/sent-ahead:absent"


def _socket_path(engine) -> str:
    return engine.api._custom_adapter.socket_path


def _kept_with_ahead(engine, ahead: list, version: str | None = None) -> engine_socket.Pipelined:
    """A connection as SSHHost._ask_api_version leaves it: /version and `ahead` sent, /version's
    answer read (its ApiVersion kept, or `version` in its place), the rest unread; kept."""
    path = _socket_path(engine)
    connection = engine_socket.Pipelined(path)
    connection.send([("/version", None)] + ahead)
    connection.ahead = ahead
    (status, answer), = connection.read(1)
    assert status == 200
    connection.engine_version = version or answer["ApiVersion"]
    engine_socket.keep(path, connection)
    return connection


def _sent(monkeypatch) -> list:
    """Every list of requests a Pipelined sends from now on."""
    sent = []
    original = engine_socket.Pipelined.send

    def send(self, targets):
        sent.append([t[0] for t in targets])
        return original(self, targets)

    monkeypatch.setattr(engine_socket.Pipelined, "send", send)
    return sent


def _asked_afresh(engine, targets: list) -> list:
    with engine_socket.Pipelined(_socket_path(engine)) as connection:
        return connection.get([(f"/v{engine.api.api_version}{t[0]}", *t[1:]) for t in targets])


def _first_round_asked(engine, monkeypatch, targets: list) -> tuple[list, list]:
    """(answers, what was sent) of a plan's first round `targets` on the kept connection."""
    sent = _sent(monkeypatch)
    rounds = _Rounds.of(engine)
    try:
        return rounds.ask(targets), sent
    finally:
        rounds.close()


def test_the_round_sent_ahead_is_the_plans_first_when_it_asks_the_same(engine, monkeypatch):
    targets = first_round(REF, ("sha256:" + "0" * 64,), "sent-ahead", "envctl-sent-ahead", None)
    kept = _kept_with_ahead(engine, targets)
    answers, sent = _first_round_asked(engine, monkeypatch, targets)
    assert sent == []  # nothing asked again: the answers were on their way
    assert answers == _asked_afresh(engine, targets)
    assert [status for status, _ in answers] == [404, 200, 200, 404]
    assert kept.ahead is None


@pytest.mark.parametrize("differs", ["round", "API version"])
def test_answers_sent_ahead_of_another_round_or_version_are_not_taken(engine, monkeypatch, differs):
    targets = first_round(REF, (), "sent-ahead", "envctl-sent-ahead", None)
    if differs == "round":
        _kept_with_ahead(engine, first_round(REF + "-other", (), "sent-ahead", "envctl-sent-ahead", None))
    else:
        _kept_with_ahead(engine, targets, version="1.12")  # as if /version had said another version
    answers, sent = _first_round_asked(engine, monkeypatch, targets)
    assert sent == [[f"/v{engine.api.api_version}{t[0]}" for t in targets]]
    assert answers == _asked_afresh(engine, targets)


def test_a_get_reads_the_answers_sent_for_before_and_leaves_them_out(engine):
    with engine_socket.Pipelined(_socket_path(engine)) as connection:
        connection.send([("/version", None), ("/_ping", None, engine_socket.RAW)])
        assert connection.get([("/_ping", None, engine_socket.RAW)]) == [(200, b"OK")]
        (status, answer), = connection.get([("/version", None)])
        assert status == 200 and answer["ApiVersion"]


class _Held:
    """A unix socket server that answers each GET with its own path as JSON, in order, holding
    every answer back until `go` is set: the first answer is still on its way while more
    requests are sent (as /version's while SSHHost.ask_ahead sends the plan's round)."""

    def __init__(self, path: str, close_after: int | None = None):
        import socket
        import threading

        self.path, self.go, self._close_after = path, threading.Event(), close_after
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            data, answered = b"", 0
            self.go.wait(10)
            while self._close_after is None or answered < self._close_after:
                while b"\r\n\r\n" not in data:
                    more = connection.recv(4096)
                    if not more:
                        break
                    data += more
                if b"\r\n\r\n" not in data:
                    break
                head, data = data.split(b"\r\n\r\n", 1)
                body = ('{"path": "%s", "ApiVersion": "1.41"}' % head.split(b" ")[1].decode()).encode()
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                   + str(len(body)).encode() + b"\r\n\r\n" + body)
                answered += 1
            connection.close()
            self._close_after = None  # the next connection answers all

    def close(self) -> None:
        self._server.close()


def test_requests_sent_while_another_thread_reads_are_answered_to_them(tmp_path):
    import threading

    server = _Held(str(tmp_path / "held.sock"))
    try:
        connection = engine_socket.Pipelined(server.path)
        connection.send([("/version", None)])
        first = []
        reader = threading.Thread(target=lambda: first.extend(connection.read(1)))
        reader.start()
        connection.send([("/a", None), ("/b", None)])  # while the reader waits for /version's answer
        server.go.set()
        reader.join(10)
        assert [answer["path"] for _, answer in first] == ["/version"]
        assert [answer["path"] for _, answer in connection.read(2)] == ["/a", "/b"]
        connection.__exit__(None, None, None)
    finally:
        server.close()


def test_a_round_sent_ahead_whose_answers_never_come_is_asked_on_a_new_connection(tmp_path):
    from types import SimpleNamespace

    server = _Held(str(tmp_path / "held.sock"), close_after=1)  # /version answered, then closed
    server.go.set()
    try:
        targets = [("/images/x/json", None), ("/containers/json", {"all": "1"})]
        connection = engine_socket.Pipelined(server.path)
        connection.send([("/version", None), *targets])
        connection.ahead, connection.engine_version = targets, "1.41"
        assert [answer["path"] for _, answer in connection.read(1)] == ["/version"]
        engine_socket.keep(server.path, connection)
        rounds = _Rounds(SimpleNamespace(api_version="1.41", hooks={}), server.path)
        answers = rounds.ask(targets)
        rounds.close()
        assert [answer["path"] for _, answer in answers] == ["/v1.41/images/x/json", "/v1.41/containers/json?all=1"]
    finally:
        server.close()
