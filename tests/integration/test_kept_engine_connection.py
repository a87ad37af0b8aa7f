"""The connection an SSH host's engine was asked its API version on is kept open for the plan's
first round (envctl/engine_socket.py keep and reused; observe_engine._Rounds): through an SSH
forward a new connection waits a round trip for its channel. Asked here on a real engine's unix
socket: the kept connection is taken once and answers the round; one that no longer answers
(the engine may close an idle connection) is replaced by a new one, and the round answers."""

from __future__ import annotations

import socket

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


def test_a_kept_connection_the_engine_closed_is_replaced(tmp_path):
    """The engine side closes the kept connection after its answer (as a server does with an
    idle one): the round's request goes out, its answer never comes, and a new connection asks
    it. A stand-in of the engine's socket that answers HTTP/1.1 as Go's net/http does: one
    connection answered and closed, then one that stays."""
    import threading
    from types import SimpleNamespace

    path = str(tmp_path / "engine.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(2)
    requests = []

    def answer(connection, body: bytes, close: bool) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        connection.sendall(head.encode() + body)
        if close:
            connection.close()

    def serve() -> None:
        for closes in (True, False):
            connection, _ = server.accept()
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(4096)
            requests.append((closes, data.split(b" ")[1].decode()))
            answer(connection, b'{"ApiVersion": "1.41"}' if closes else b'"OK"', closes)
            if not closes:
                connection.recv(1)  # held open until the client closes it

    threading.Thread(target=serve, daemon=True).start()
    kept = engine_socket.Pipelined(path)
    assert kept.get([("/version", None)]) == [(200, {"ApiVersion": "1.41"})]
    engine_socket.keep(path, kept)
    rounds = _Rounds(SimpleNamespace(api_version="1.41", hooks={}), path)
    try:
        assert rounds.ask([("/_ping", None)]) == [(200, "OK")]
    finally:
        rounds.close()
        server.close()
    assert requests == [(True, "/version"), (False, "/v1.41/_ping")]
