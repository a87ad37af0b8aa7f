"""--master-port outside 1-65535 is a usage error (exit 2) where it is read, before any host is
opened: exec, doctor and plan with --nodes, and export. It reached the preflight, whose port
check in node 0's container then blocked the run (exit 5, 'nc could not listen'), and 0 would
have passed as no port at all where a command checks the option's truth."""

import os
import subprocess
import sys

import pytest


def envctl(*args):
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env={**os.environ, "ENVCTL_INVENTORY": os.devnull}, timeout=60)


@pytest.mark.parametrize("command", [
    ("exec", "train", "--nodes", "lab1,lab2"),
    ("exec", "train"),  # without --nodes too: 0 is not taken for 'not given'
    ("doctor", "--nodes", "lab1,lab2"),
    ("plan", "chatglm-tiny-cpu:nodes", "--nodes", "lab1,lab2", "--entrypoint", "train"),
    ("export", "chatglm-tiny-cpu:nodes", "--format", "slurm", "--entrypoint", "train", "--nodes", "2"),
])
@pytest.mark.parametrize("port", ["0", "65536", "99999", "-1"])
def test_a_master_port_out_of_range_is_a_usage_error(command, port):
    done = envctl(*command, "--master-port", port)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Invalid value for '--master-port'" in done.stderr and "Traceback" not in done.stderr


def test_the_highest_port_is_accepted_by_the_option():
    # 65535 passes the option and goes on to the command's own checks (here: no such host).
    done = envctl("exec", "train", "--nodes", "nohost-a.invalid,nohost-b.invalid", "--master-port", "65535")
    assert "Invalid value for '--master-port'" not in done.stderr, done.stderr
