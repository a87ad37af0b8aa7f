"""envctl/cli.py _with_command_exits: what escapes a command (the typer app's, or a run the quick
exec path started) exits the same way: an EnvctlError printed with its code, Ctrl-C 130, a bug
70 with one line and no traceback."""

from __future__ import annotations

import pytest

from envctl.cli import _with_command_exits
from envctl.errors import EnvctlError


def _exit_of(command, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as raised:
        _with_command_exits(command)
    return raised.value.code, capsys.readouterr().err


def _raise(exc):
    def command():
        raise exc
    return command


def test_the_value_comes_back():
    assert _with_command_exits(lambda: 3) == 3


def test_a_users_error_is_printed_with_its_exit_code(capsys):
    code, err = _exit_of(_raise(EnvctlError("no environment is up", hint="start one", exit_code=4)), capsys)
    assert (code, err) == (4, "error: no environment is up\nhint:  start one\n")


def test_ctrl_c_is_130(capsys):
    assert _exit_of(_raise(KeyboardInterrupt()), capsys) == (130, "")


def test_a_bug_is_an_internal_error_without_a_traceback(capsys, monkeypatch):
    monkeypatch.delenv("ENVCTL_DEBUG", raising=False)
    code, err = _exit_of(_raise(RuntimeError("boom")), capsys)
    assert code == 70 and err.startswith("error: envctl hit an internal error (a bug).") and "RuntimeError: boom" in err
    assert "Traceback" not in err
    monkeypatch.setenv("ENVCTL_DEBUG", "1")
    with pytest.raises(RuntimeError):
        _with_command_exits(_raise(RuntimeError("boom")))
