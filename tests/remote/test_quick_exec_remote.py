"""The quick path of `exec ENTRY --host H` (envctl/quick_exec.py, envctl/quick_exec_record.py) on
the SSH lab: the first such exec that ran through the host's docker CLI records what it resolved
the run from; the next identical exec starts the same run from that record, printing what the
full path prints (ENVCTL_NO_QUICK=1) but the log's time stamp, with the variables passed at run
time read again, and leaves to the full path every world the record does not hold: the manifest
edited, the container removed, the master connection gone (a container made again from the same
manifest is the same run's). A run whose output is masked (a passed credential) and a credential
in what the record would hold write no record.

Which path answered is read from `python -X importtime`'s report (quick_answers.py). Never
timings. Each test first sees the quick path answer, so that each fails without it."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import docker
import pytest

from quick_answers import Said, envctl, master_socket
from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  pass_env: [LOG_LEVEL, FROM_FILE{more_passed}]
  env_file: run.env
entrypoints:
  hello:
    run: 'echo "level=$LOG_LEVEL file=$FROM_FILE greeting=$GREETING args=$*"; pwd'
    workdir: /tmp
    env: {{GREETING: {greeting}}}
  fail: {{run: "echo failing; exit 3"}}
  wait: {{run: "echo waiting; if [ -e /tmp/hold ]; then sleep 60; fi"}}
"""
LOG_LINE = re.compile(r"^log: (/\S+/logs/[a-z]+-\d{8}T\d{6}Z-[0-9a-f]{4}\.log) on lab1$", re.M)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("quick-exec-remote") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def brought_up(world, tarball, greeting: str = "hi", more_passed: str = "") -> str:
    """The environment up on lab1 with its env file beside the manifest; the manifest's path."""
    path = world.write(BODY.format(image=IMAGE, tarball=tarball, greeting=greeting, more_passed=more_passed))
    (path.parent / "run.env").write_text("FROM_FILE=from-the-file\n")
    made = envctl(world, "up", str(path), "--host", "lab1")
    assert made.code == 0, made
    return str(path)


def same_but_the_log(said: Said) -> tuple:
    """The output with the log's time stamp taken out (each run names its own log)."""
    return said.code, said.stdout, LOG_LINE.sub("log: LOG on lab1", said.stderr)


def started_quickly(world, *args, **extra) -> Said:
    """The quick path's run of `exec ARGS`, checked equal to the full path's: the full path
    (ENVCTL_NO_QUICK=1, which records too: the key leaves that variable out), then the command as
    typed: the quick path."""
    full = envctl(world, "exec", *args, quick=False, **extra)
    quick = envctl(world, "exec", *args, **extra)
    assert not full.quick and quick.quick, (quick, full)
    assert same_but_the_log(quick) == same_but_the_log(full), (quick, full)
    return quick


def host_log(world, said: Said) -> str:
    found = LOG_LINE.search(said.stderr)
    assert found, said
    return world.remote("lab1", found.group(1)).read_text()


def records(world) -> list[str]:
    """The exec records in the test's cache (up's records lie beside them)."""
    found = []
    for path in sorted(glob.glob(str(world.base / "cache" / "state" / "quick-up" / "*.json"))):
        with open(path) as file:
            if "run" in json.load(file):
                found.append(path)
    return found


def test_an_exec_is_started_from_the_record_as_the_full_path_runs_it(world, lab, tarball):
    path = brought_up(world, tarball)
    quick = started_quickly(world, "hello", "--host", "lab1", LOG_LEVEL="debug")
    assert quick.stdout == "level=debug file=from-the-file greeting=hi args=\n/tmp\n", quick
    # The host's docker CLI wrote the run's log as it passed (two runs in one second share a log).
    assert host_log(world, quick).endswith(quick.stdout)
    assert not {"typer", "docker", "pydantic", "yaml", "envctl.cli_app"} & quick.modules
    for option in ("-H", "--hosts"):
        assert started_quickly(world, "hello", option, "lab1", LOG_LEVEL="debug").stdout == quick.stdout
    # The passed values are read again, never taken from the record: another value in the env
    # file (a file the record fingerprints) is the full path's, then the quick path's again.
    (world.base / "run.env").write_text("FROM_FILE=edited\n")
    edited = envctl(world, "exec", "hello", "--host", "lab1", LOG_LEVEL="debug")
    assert not edited.quick and "file=edited " in edited.stdout, edited
    again = envctl(world, "exec", "hello", "--host", "lab1", LOG_LEVEL="debug")
    assert again.quick and again.stdout == edited.stdout, again
    # Another value in the environment is another record's key: the full path records it.
    other = envctl(world, "exec", "hello", "--host", "lab1", LOG_LEVEL="info")
    assert not other.quick and other.stdout.startswith("level=info "), other
    assert os.path.exists(path)


def test_the_full_path_runs_it_without_docker_py(world, lab, tarball):
    """The full path of an exec on an SSH host reads the engine through its own listing (the
    standard library) and runs the entrypoint through the host's docker CLI: docker-py, requests
    and urllib3 (~0.1 s of imports here) are not loaded for it (an environment without baked
    images, whose plan asks the engine nothing more)."""
    brought_up(world, tarball)
    full = envctl(world, "exec", "hello", "--host", "lab1", quick=False)
    assert full.code == 0 and full.stdout.startswith("level= "), full
    assert not {"docker", "requests", "urllib3"} & full.modules, sorted(full.modules)


def test_the_entrypoints_exit_code_and_a_missing_variables_warning_come_through(world, lab, tarball):
    brought_up(world, tarball)
    quick = started_quickly(world, "fail", "--host", "lab1")
    assert quick.code == 3 and quick.stdout == "failing\n", quick
    assert "warning: LOG_LEVEL is not set" in quick.stderr, quick


def test_what_the_record_rests_on_changed_goes_to_the_full_path(world, lab, tarball):
    path = brought_up(world, tarball)
    started_quickly(world, "hello", "--host", "lab1")
    # The manifest edited (the entrypoint's env): its bytes are the record's.
    brought_up(world, tarball, greeting="hello")
    edited = envctl(world, "exec", "hello", "--host", "lab1")
    assert not edited.quick and "greeting=hello " in edited.stdout, edited
    assert envctl(world, "exec", "hello", "--host", "lab1").quick
    # The container removed, then made again by `up` from the same manifest: another ID, the
    # same run (the record holds).
    container = world.container
    assert lab.docker("lab1", "rm", "-f", container).returncode == 0
    assert envctl(world, "up", path, "--host", "lab1").code == 0
    recreated = envctl(world, "exec", "hello", "--host", "lab1")
    assert recreated.quick and same_but_the_log(recreated)[:2] == (0, edited.stdout), recreated
    # The container removed: the full path says so (and, failing, leaves no record).
    assert lab.docker("lab1", "rm", "-f", container).returncode == 0
    gone = envctl(world, "exec", "hello", "--host", "lab1")
    full = envctl(world, "exec", "hello", "--host", "lab1", quick=False)
    assert not gone.quick and gone.output == full.output and gone.code == 4, gone
    assert envctl(world, "up", path, "--host", "lab1").code == 0
    assert not envctl(world, "exec", "hello", "--host", "lab1").quick
    assert envctl(world, "exec", "hello", "--host", "lab1").quick
    # The master connection ended: nothing new is connected to by the quick path.
    ended = subprocess.run(["ssh", "-S", master_socket(world), "-O", "exit", "lab1"], capture_output=True, timeout=30)
    assert ended.returncode == 0, ended.stderr
    reconnected = envctl(world, "exec", "hello", "--host", "lab1")
    assert not reconnected.quick and same_but_the_log(reconnected)[:2] == (0, edited.stdout), reconnected


def test_a_masked_run_and_a_credential_in_the_run_are_never_recorded(world, lab, tarball):
    brought_up(world, tarball, more_passed=", HF_TOKEN")
    token = "hf_quickexecsecret0123456789"
    for _ in range(3):  # the token is passed: the output is masked, from this machine, never recorded
        said = envctl(world, "exec", "hello", "--host", "lab1", HF_TOKEN=token)
        assert not said.quick and said.code == 0, said
    assert records(world) == []
    # A credential in the entrypoint's arguments (from the environment, interpolated): no record.
    brought_up(world, tarball, greeting='"${API_PASSWORD:-none}"')
    for _ in range(3):
        said = envctl(world, "exec", "hello", "--host", "lab1", API_PASSWORD=token)
        assert not said.quick and said.code == 0, said
    assert records(world) == []
    # Without either: recorded, and none of these values in the cache.
    said = started_quickly(world, "fail", "--host", "lab1")
    assert said.code == 3 and len(records(world)) == 1
    for path in glob.glob(str(world.base / "cache" / "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as file:
                assert token.encode() not in file.read(), path


def test_ctrl_c_reaches_the_run_started_by_the_quick_path(world, lab, tarball):
    brought_up(world, tarball)
    started_quickly(world, "wait", "--host", "lab1")  # recorded while the run returns at once
    held = lab.docker("lab1", "exec", world.container, "touch", "/tmp/hold")  # nothing a record reads
    assert held.returncode == 0, held.stderr
    running = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "envctl", "exec", "wait", "--host", "lab1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=world.environ())
    deadline = time.monotonic() + 60  # a bound on waiting, not an assertion on time
    while "sleep 60" not in lab.docker("lab1", "top", world.container).stdout:
        assert running.poll() is None and time.monotonic() < deadline, running.communicate()
        time.sleep(0.1)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert "envctl.cli_app" not in err, err[-3000:]  # started by the quick path
    assert running.returncode == 130 and out == "waiting\n", (running.returncode, out, err[-2000:])
    assert "sleep 60" not in lab.docker("lab1", "top", world.container).stdout


def test_stdin_becoming_a_terminal_goes_to_the_full_path(world, lab, tarball):
    """The record's key holds whether stdout and stderr are terminals; exec also reads stdin's
    (an interactive entrypoint gets a terminal when stdin and stdout are one)."""
    import pty

    brought_up(world, tarball)
    started_quickly(world, "fail", "--host", "lab1")
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "envctl", "exec", "fail", "--host", "lab1"],
                              stdin=follower, capture_output=True, text=True, env=world.environ(), timeout=300)
    finally:
        os.close(leader)
        os.close(follower)
    assert "envctl.cli_app" in done.stderr and done.returncode == 3 and done.stdout == "failing\n", done
