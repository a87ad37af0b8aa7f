"""envctl started with a standard stream closed (`>&-`, `<&-`), as a shell line or a service
unit can start it: a clear error and exit 2 for a closed stdout, never a traceback; a closed
stdin reads nothing (envctl/cli.py _standard_streams)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(redirect: str, *args: str) -> subprocess.CompletedProcess:
    # sh closes the descriptor, then becomes envctl with it closed.
    return subprocess.run(["sh", "-c", f'exec "$@" {redirect}', "sh", sys.executable, "-m", "envctl", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("version",), ("list",), ("exec", "train", "--host", "lab1")])
def test_stdout_closed_is_a_usage_error_said_on_stderr(args):
    done = _run(">&-", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done
    assert done.stderr.startswith("error: stdout closed (>&-)"), done.stderr


def test_stdin_closed_reads_nothing(tmp_path):
    done = _run("<&-", "list")
    assert done.returncode == 0 and "chatglm-tiny-cpu" in done.stdout and done.stderr == "", done
    given = _run("<&-", "new", "x", "--from-docker-run", "-", "--dir", str(tmp_path))  # reads the command from stdin
    assert (given.returncode, given.stderr) == (2, "error: no docker run command given\n"), given
