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
