"""`envctl logs ENTRY -f` ends when the run it follows has ended, on a real engine, as `docker
logs -f` ends when its container stops: with what the run wrote last printed and its exit code
said on stderr. Kinds: a detached server stopped with `envctl stop` (SIGTERM), a detached run
that ends by itself with its own exit code (its last line written just before it exits), a run
started in the foreground by `envctl exec` in another terminal (its log written as it prints); and `-f` of a run that has
already ended prints its log and returns at once."""

from __future__ import annotations

import subprocess

import pytest

from support import IMAGE

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
entrypoints:
  web:
    run: mkdir -p /www && echo ok > /www/health && echo "web serving" && exec httpd -f -vv -p 8000 -h /www
    ports: [8000]
    ready: {{http: /health}}
  finite:
    # Ends when the test says so (the file /tmp/go), its last line written just before it exits.
    run: echo "finite started"; while [ ! -e /tmp/go ]; do sleep 0.2; done; echo "finite last line"; exit 3
  idle:
    run: echo idle started; exec sleep 600
"""
GUARD_SECONDS = 120  # only a failure guard: a follow that never ends fails here instead of hanging


def up(env, tarballs):
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr


def read_until(follower: subprocess.Popen, line: str) -> str:
    seen = ""
    while line not in seen:
        got = follower.stdout.readline()
        if not got:
            follower.kill()
            pytest.fail(f"logs -f ended before it printed {line!r}: {seen!r} {follower.stderr.read()!r}")
        seen += got
    return seen


def ended(follower: subprocess.Popen) -> tuple[int, str, str]:
    """The follow's exit code and output once it ended by itself (killed, and failed, past the guard)."""
    try:
        out, err = follower.communicate(timeout=GUARD_SECONDS)
    except subprocess.TimeoutExpired:
        follower.kill()
        out, err = follower.communicate()
        pytest.fail(f"logs -f did not end after the run it follows ended: {out!r} {err!r}")
    return follower.returncode, out, err


def test_following_a_detached_server_ends_when_it_is_stopped(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    assert env.run("exec", "web", "--detach", "--env", env.container).returncode == 0
    follower = env.popen("logs", "web", "-f", "--env", env.container)
    try:
        read_until(follower, "web serving")
        stopped = env.run("stop", "web", "--env", env.container)
        assert stopped.returncode == 0, stopped.stderr
        code, _, err = ended(follower)
    finally:
        follower.kill()
        follower.wait()
    assert code == 0, err
    assert "web ended (exit code 143: SIGTERM)" in err, err


def test_following_a_detached_run_that_exits_prints_its_last_line_and_exit_code(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    assert env.run("exec", "finite", "--detach", "--env", env.container).returncode == 0
    follower = env.popen("logs", "finite", "-f", "--env", env.container)
    try:
        seen = read_until(follower, "finite started")
        assert env.inside("touch /tmp/go")[0] == 0
        code, out, err = ended(follower)
    finally:
        follower.kill()
        follower.wait()
    assert code == 0, err
    assert (seen + out).splitlines() == ["finite started", "finite last line"], seen + out  # drained, nothing twice
    assert "finite ended (exit code 3)" in err, err

    # The run has ended: -f prints its log and returns at once, as without -f.
    again = env.run("logs", "finite", "-f", "--env", env.container)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["finite started", "finite last line"], again.stdout
    assert "ended" not in again.stderr, again.stderr



def test_following_a_foreground_run_ends_when_it_ends(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    attached = env.popen("exec", "idle", "--env", env.container)
    follower = None
    try:
        assert attached.stdout.readline() == "idle started\n"
        follower = env.popen("logs", "idle", "-f", "--env", env.container)
        read_until(follower, "idle started")
        assert env.run("stop", "idle", "--env", env.container).returncode == 0
        code, _, err = ended(follower)
        assert code == 0, err
        assert "idle ended (exit code 143: SIGTERM)" in err, err
    finally:
        for process in (attached, follower):
            if process is not None:
                process.kill()
                process.wait()
