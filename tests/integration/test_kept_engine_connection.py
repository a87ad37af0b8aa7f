"""The connection an SSH host's engine was asked its API version on is kept open for the plan's
first round (envctl/engine_socket.py keep and reused; observe_engine._Rounds): through an SSH
forward a new connection waits a round trip for its channel. Asked here on a real engine's unix
socket: the kept connection is taken once and answers the round; one that no longer answers
(the engine may close an idle connection) is replaced by a new one, and the round answers. How
an engine closes a connection (before an answer, after one, saying so or not) is played by a
stand-in socket: a round already answered in part, or a second round, is never asked again."""

from __future__ import annotations

import socket

import pytest

from envctl import engine_socket
from envctl.observe_engine import _Rounds


def _socket_path(engine) -> str:
    return engine.api._custom_adapter.socket_path


def test_a_kept_connection_answers_the_next_round_and_is_taken_once(engine):
    path = _socket_path(engine)
    kept = engine_socket.Pipelined(path)
    (status, answer), = kept.get([("/version", None)])
    assert status == 200 and answer["ApiVersion"]
    engine_socket.keep(path, kept)
    rounds = _Rounds.of(engine)
    try:
        assert rounds._pipelined is kept
        assert engine_socket.reused(path) is None  # taken: nobody else gets it
        (status, answer), = rounds.ask([("/_ping", None, engine_socket.RAW)])
        assert (status, answer) == (200, b"OK")
    finally:
        rounds.close()


def test_a_kept_connection_that_no_longer_answers_is_replaced(engine):
    path = _socket_path(engine)
    kept = engine_socket.Pipelined(path)
    kept.get([("/version", None)])
    kept._socket.shutdown(socket.SHUT_RDWR)  # as an engine's close of an idle connection leaves it
    engine_socket.keep(path, kept)
    rounds = _Rounds.of(engine)
    try:
        (status, answer), = rounds.ask([("/_ping", None, engine_socket.RAW)])
        assert (status, answer) == (200, b"OK")
        assert rounds._pipelined is not kept
    finally:
        rounds.close()


def test_keeping_another_connection_for_a_path_closes_the_one_kept_before(engine):
    path = _socket_path(engine)
    first, second = engine_socket.Pipelined(path), engine_socket.Pipelined(path)
    first.get([("/version", None)])
    engine_socket.keep(path, first)
    engine_socket.keep(path, second)
    assert first._socket.fileno() == -1  # closed
    assert engine_socket.reused(path) is second
    second.__exit__(None, None, None)


class _StandIn:
    """A unix socket that answers HTTP/1.1 GETs as Go's net/http does, each connection by a
    script: ("answer", body), ("answer and close", body) (with `Connection: close`, as a server
    says it is closing) or ("close",) per request, in order; then the connection closes.
    `connections`: how many were made."""

    def __init__(self, path: str, scripts: list):
        import threading

        self.path, self.connections = path, 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(4)
        self._scripts = list(scripts)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self._scripts:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            script, data = self._scripts.pop(0), b""
            for step in script:
                while b"\r\n\r\n" not in data:
                    data += connection.recv(4096)
                data = data.split(b"\r\n\r\n", 1)[1]
                if step[0] == "close":
                    break
                body, closing = step[1], "Connection: close\r\n" if step[0] == "answer and close" else ""
                connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{closing}Content-Length: "
                                   f"{len(body)}\r\n\r\n".encode() + body)
                if closing:
                    break
            connection.close()

    def close(self) -> None:
        self._server.close()


def _kept_rounds(standin):
    from types import SimpleNamespace

    kept = engine_socket.Pipelined(standin.path)
    assert kept.get([("/version", None)]) == [(200, {"ApiVersion": "1.41"})]
    engine_socket.keep(standin.path, kept)
    return _Rounds(SimpleNamespace(api_version="1.41", hooks={}), standin.path)


VERSION = ("answer", b'{"ApiVersion": "1.41"}')


def test_a_kept_connection_the_engine_closed_is_replaced(tmp_path):
    """The engine side closes the kept connection after its answer (as a server does with an
    idle one): the round's request goes out, its answer never comes, and a new connection asks
    it."""
    standin = _StandIn(str(tmp_path / "engine.sock"), [[VERSION], [("answer", b'"OK"')]])
    rounds = _kept_rounds(standin)
    try:
        assert rounds.ask([("/_ping", None)]) == [(200, "OK")]
    finally:
        rounds.close()
        standin.close()
    assert standin.connections == 2


@pytest.mark.parametrize("end", ["close", "answer and close"])
def test_a_round_the_kept_connection_answered_in_part_is_not_asked_again(tmp_path, end):
    """The first of two requests answered, then the connection closed (without a word, or
    saying so in that answer): the state archive (which mounts the container's mounts) and the
    like are not asked a second time; the round is said unanswered, and the caller asks through
    docker-py (observe_engine.view)."""
    script = [VERSION, ("answer", b'"a"'), ("close",)] if end == "close" else [VERSION, ("answer and close", b'"a"')]
    standin = _StandIn(str(tmp_path / "engine.sock"), [script, [("answer", b'"x"')]])
    rounds = _kept_rounds(standin)
    try:
        assert rounds.ask([("/a", None), ("/b", None)]) == [(0, None), (0, None)]
    finally:
        rounds.close()
        standin.close()
    assert standin.connections == 1


def test_a_kept_connection_is_replaced_on_its_first_use_only(tmp_path):
    standin = _StandIn(str(tmp_path / "engine.sock"), [[VERSION, ("answer", b'"a"'), ("close",)], [("answer", b'"x"')]])
    rounds = _kept_rounds(standin)
    try:
        assert rounds.ask([("/a", None)]) == [(200, "a")]
        assert rounds.ask([("/b", None)]) == [(0, None)]  # its second round: not asked again elsewhere
    finally:
        rounds.close()
        standin.close()
    assert standin.connections == 1
