"""A detached server that prints a passed secret, on a real engine: its log is written inside the
container as the program printed it (the file in the workspace holds the value), and `envctl
logs ENTRY` and `logs ENTRY -f` mask the values of container.pass_env that the caller knows, from
its environment or an env file (--env-file, as exec takes it), by envctl's one rule
(envctl/masking.py: a long value anywhere, a short one where it stands alone, other words left
alone). A value the caller does not have cannot be masked: logs says which."""

from __future__ import annotations

import time
import uuid

import pytest

from support import IMAGE

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  pass_env: [HF_TOKEN, API_PASSWORD, LOG_LEVEL]
entrypoints:
  web:
    # A server that says what it was given at start, as careless servers do, then serves.
    run: >-
      mkdir -p /www && echo ok > /www/health &&
      echo "HF_TOKEN=$HF_TOKEN loading examples at level $LOG_LEVEL" &&
      echo "auth: Bearer$HF_TOKEN" &&
      echo "password: $API_PASSWORD." &&
      echo "web serving" &&
      exec httpd -f -vv -p 8000 -h /www
    ports: [8000]
    ready: {{http: /health, timeout: 60}}
"""
PASSWORD = "s3cr"  # shorter than masking.WHOLE_WORD_BELOW: masked only where it stands alone


def _environ(env, **values):
    environ = env.environ(**values)
    for name in ("HF_TOKEN", "API_PASSWORD", "LOG_LEVEL"):
        if name not in values:
            environ.pop(name, None)
    return environ


def _follow(env, environ, *args) -> str:
    """`envctl logs ... -f` read until the server's last start-up line (then stopped)."""
    follower = env.popen("logs", *args, "-f", env=environ)
    seen = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = follower.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "web serving" in line:
                return "".join(seen)
        pytest.fail(f"logs -f never printed 'web serving': {''.join(seen)!r}")
    finally:
        follower.kill()
        follower.wait()
    return "".join(seen)


def test_logs_of_a_detached_server_mask_the_passed_secrets_it_printed(make_env, tarballs, tmp_path):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    token = "hf_" + uuid.uuid4().hex
    given = _environ(env, HF_TOKEN=token, API_PASSWORD=PASSWORD, LOG_LEVEL="INFO")
    assert env.run("up", str(env.manifest), env=given).returncode == 0
    where = ("--env", env.container)
    started = env.run("exec", "web", "--detach", *where, env=given)
    assert started.returncode == 0, started.stderr
    assert token not in started.stdout + started.stderr
    log = next(line.split()[1] for line in started.stdout.splitlines() if line.startswith("log "))
    # What remains: the run wrote its log inside the container, as the program printed it.
    assert token.encode() in open(log, "rb").read()

    masked = ("HF_TOKEN=*** loading examples at level INFO\n"  # a passed log level is no secret
              "auth: Bearer***\n"  # a long value glued to a word
              "password: ***.\n"  # a short value standing alone
              "web serving\n")
    shown = env.run("logs", "web", *where, env=given)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(masked), shown.stdout
    assert token not in shown.stdout + shown.stderr and PASSWORD not in shown.stdout
    assert shown.stderr == ""  # every value known: nothing to warn about

    followed = _follow(env, given, "web", *where)
    assert followed.startswith(masked) and token not in followed, followed

    # The values from an env file instead of the environment (as exec --env-file takes them).
    env_file = tmp_path / "secrets.env"
    env_file.write_text(f"HF_TOKEN={token}\nAPI_PASSWORD={PASSWORD}\n")
    env_file.chmod(0o600)
    without = _environ(env)
    from_file = env.run("logs", "web", *where, "--env-file", str(env_file), env=without)
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.startswith(masked) and token not in from_file.stdout, from_file.stdout

    # A caller without the values cannot mask them, and is told which.
    unknown = env.run("logs", "web", *where, env=without)
    assert unknown.returncode == 0, unknown.stderr
    for name in ("HF_TOKEN", "API_PASSWORD"):
        assert f"warning: {name} (container.pass_env) is not set here, so its value is not masked" in unknown.stderr
    assert "LOG_LEVEL" not in unknown.stderr  # not a credential: nothing to mask
    assert token in unknown.stdout

    # Stopped, the run's log is the newest file: still masked, by entrypoint and by environment.
    stopped = env.run("stop", "web", *where, env=given)
    assert stopped.returncode == 0, stopped.stderr
    for args in (("web", *where), (env.container,)):
        after = env.run("logs", *args, env=given)
        assert after.returncode == 0 and after.stdout.startswith(masked), after.stdout + after.stderr
        assert token not in after.stdout


def test_logs_with_an_env_file_that_cannot_be_read_is_a_usage_error(make_env, tarballs, tmp_path):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    given = _environ(env, HF_TOKEN="hf_" + uuid.uuid4().hex, API_PASSWORD=PASSWORD)
    assert env.run("up", str(env.manifest), env=given).returncode == 0
    assert env.run("exec", "web", "--detach", "--env", env.container, env=given).returncode == 0
    missing = tmp_path / "no-such.env"
    done = env.run("logs", "web", "--env", env.container, "--env-file", str(missing), env=given)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot read the env file {missing}" in done.stderr and done.stdout == ""
