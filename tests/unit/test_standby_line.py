"""The command line a session opened ahead runs (envctl/remote/standby.py): every argument
arrives exactly as given, and what follows the line on stdin is the command's, in the shells
a host's `sh` is (dash: Debian's and Ubuntu's; bash: RHEL's and others'; busybox ash)."""

from __future__ import annotations

import subprocess

import pytest

from envctl.remote.standby import _AWAIT, command_line

SHELLS = {"dash": ["/bin/dash"], "bash": ["/bin/bash", "--posix"], "busybox ash": ["/bin/busybox", "sh"]}

ARGUMENTS = [
    "plain",
    "",
    "two words",
    "  spaces around  ",
    "tab\there",
    "line one\nline two\n",
    "\n",
    "it's",
    "'\n'",
    "'\"$nl\"'",  # the very text a newline is written as
    'double "quotes" and \\backslashes\\',
    "$HOME $(id) `id` ${x:-y} *.bin ~ ; & | > <",
    "ends with a backslash\\",
    "non-ASCII: 模型权重 ✓",
    "-n",
]

# Prints each argument NUL-terminated, then copies its stdin: what the session's command got.
_ECHO = 'for a in "$@"; do printf "%s\\0" "$a"; done; printf "\\001END\\001"; cat'


@pytest.mark.parametrize("shell", SHELLS, ids=list(SHELLS))
def test_every_argument_and_the_stdin_after_the_line_reach_the_command(shell):
    argv = ["sh", "-c", _ECHO, "sh", *ARGUMENTS]
    rest = b"bytes after the line\nand more\0\xff"
    done = subprocess.run([*SHELLS[shell], "-c", _AWAIT, "sh"], input=command_line(argv) + rest,
                          capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    said, _, copied = done.stdout.partition(b"\x01END\x01")
    assert said.split(b"\0")[:-1] == [a.encode() for a in ARGUMENTS]
    assert copied == rest


@pytest.mark.parametrize("shell", SHELLS, ids=list(SHELLS))
def test_a_session_never_sent_a_line_runs_nothing(shell, tmp_path):
    done = subprocess.run([*SHELLS[shell], "-c", _AWAIT, "sh"], input=b"", capture_output=True, cwd=tmp_path,
                          timeout=30, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shell", SHELLS, ids=list(SHELLS))
def test_the_commands_exit_code_is_the_sessions(shell):
    done = subprocess.run([*SHELLS[shell], "-c", _AWAIT, "sh"], input=command_line(["sh", "-c", "exit 7"]),
                          capture_output=True, timeout=30, check=False)
    assert done.returncode == 7


def test_the_line_has_no_newline_but_its_end():
    line = command_line(["sh", "-c", "a\nb\n", "x\ny"])
    assert line.endswith(b"\n") and line.count(b"\n") == 1
