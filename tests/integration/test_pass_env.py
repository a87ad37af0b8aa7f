"""container.pass_env on a real engine: a token reaches the setup steps and entrypoints that run,
and nothing else — not the container's configuration (`docker inspect`), its labels, the plan
(text, --json, a saved plan), envctl's output, the workspace logs or the state under the cache;
rotating it recreates nothing and re-runs no step; it is never on a process's command line."""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from support import IMAGE

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  pass_env: [HF_TOKEN, NOT_GIVEN_TOKEN]
setup:
  - name: use the token
    run: |
      test -n "$HF_TOKEN" || {{ echo "no token"; exit 9; }}
      printf '%s' "$HF_TOKEN" > /tmp/seen-by-step
      echo "step prints token=$HF_TOKEN and examples"
      touch /tmp/step-started
      while [ ! -e /tmp/step-go ]; do sleep 0.1; done
entrypoints:
  show:
    run: printf '%s' "$HF_TOKEN" > /tmp/seen-by-entry; echo "entry prints $HF_TOKEN twice $HF_TOKEN, examples"
  wait:
    run: touch /tmp/entry-started; while [ ! -e /tmp/entry-go ]; do sleep 0.1; done; echo done
"""


def _token() -> str:
    return "hf_" + uuid.uuid4().hex


def _environ(env, **values):
    environ = env.environ(**values)
    for name in ("HF_TOKEN", "NOT_GIVEN_TOKEN"):
        if name not in values:
            environ.pop(name, None)
    return environ


def _wait_for(check, what: str, limit: float = 60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {limit} s")


def _argv_holding(secret: str) -> list[str]:
    """Command lines of every process on this machine (containers' too: one kernel) holding `secret`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # ended meanwhile
            if secret.encode() in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _files_holding(root: Path, secret: str, skip: tuple[Path, ...] = ()) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path not in skip and secret.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


def _up_released(env, environ) -> subprocess.CompletedProcess:
    """`up`, letting its blocking setup step finish once it started (the step waits for a file)."""
    process = env.popen("up", str(env.manifest), env=environ)

    def started() -> bool:
        container = env.get()
        return container is not None and container.status == "running" and \
            env.inside("test -e /tmp/step-started")[0] == 0

    try:
        _wait_for(started, "the setup step starting")
        hits = _argv_holding(environ["HF_TOKEN"])
        assert _argv_holding("/tmp/step-go"), "the scan does not see the setup step's processes"
        env.inside("touch /tmp/step-go")
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert hits == [], f"the token is on a command line while a setup step runs: {hits}"
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_token_reaches_steps_and_entrypoints_only(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    token = _token()
    environ = _environ(env, HF_TOKEN=token)

    plan = env.run("plan", str(env.manifest), env=environ)
    plan_json = env.run("plan", str(env.manifest), "--json", env=environ)
    saved = env.base / "saved-plan.json"
    saved_run = env.run("plan", str(env.manifest), "-o", str(saved), env=environ)
    for done in (plan, plan_json, saved_run):
        assert done.returncode == 0, done.stdout + done.stderr
        assert token not in done.stdout + done.stderr
    assert "HF_TOKEN (passed, set from the environment)" in plan.stdout
    assert "NOT_GIVEN_TOKEN (passed, not set)" in plan.stdout
    assert "warning: NOT_GIVEN_TOKEN is not set" in plan.stdout  # a warning, not a blocker
    passed = json.loads(plan_json.stdout)["passed"]
    assert passed == [{"name": "HF_TOKEN", "state": "set", "origin": "environment"},
                      {"name": "NOT_GIVEN_TOKEN", "state": "not set", "origin": None}]
    assert token not in saved.read_text()

    up = _up_released(env, environ)
    assert up.returncode == 0, up.stdout + up.stderr
    assert token not in up.stdout + up.stderr
    assert "step prints token=*** and examples" in up.stdout + up.stderr  # masked as a value, words left alone
    assert "NOT_GIVEN_TOKEN is not set" in up.stdout + up.stderr  # said by up too, and up went on
    assert env.inside("cat /tmp/seen-by-step") == (0, token)

    container = env.get()
    container.reload()
    assert token not in json.dumps(container.attrs), "the token is in the container's configuration"
    assert not [e for e in container.attrs["Config"]["Env"] if e.startswith("HF_TOKEN")]
    assert token not in json.dumps(container.labels)
    assert token not in json.dumps(env.engine.images.get(container.attrs["Image"]).attrs)

    shown = env.run("exec", "show", "--env", env.container, env=environ)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "entry prints *** twice ***, examples\n"
    assert "warning: NOT_GIVEN_TOKEN is not set" in shown.stderr
    assert env.inside("cat /tmp/seen-by-entry") == (0, token)

    # While an entrypoint runs, no process here (nor in the container) has it on its command line.
    waiting = env.popen("exec", "wait", "--env", env.container, env=environ)
    try:
        _wait_for(lambda: env.inside("test -e /tmp/entry-started")[0] == 0, "the entrypoint starting")
        assert _argv_holding(token) == []
        assert _argv_holding("/tmp/entry-go"), "the scan does not see the container's processes"
        env.inside("touch /tmp/entry-go")
        assert waiting.wait(timeout=60) == 0
    finally:
        if waiting.poll() is None:
            waiting.kill()

    # Nothing envctl keeps holds it: workspace logs, state and records under the cache, the lock
    # directory, the saved plan (the manifest directory is the test's directory).
    locked = env.run("lock", str(env.manifest), env=environ)
    assert locked.returncode == 0 and token not in locked.stdout + locked.stderr, locked.stderr
    assert list(env.base.glob("*.lock*")), "lock wrote no lock file beside the manifest"
    status = env.run("status", "--json", env=environ)
    logs = env.run("logs", env.container, env=environ)
    assert token not in status.stdout + logs.stdout
    assert _files_holding(env.base, token) == []


def test_a_step_failing_without_the_token_names_it(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    failed = env.run("up", str(env.manifest), env=_environ(env))
    assert failed.returncode == 5, failed.stderr
    assert "setup step 1 'use the token' failed with exit code 9" in failed.stderr and "no token" in failed.stderr
    assert "hint:  HF_TOKEN, NOT_GIVEN_TOKEN (container.pass_env) were not set or empty: export them or give " \
           "--env-file FILE if the step needs them; fix the cause and run `envctl up` again" in failed.stderr


def test_rotating_the_token_recreates_nothing_and_reruns_no_step(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    first = _up_released(env, _environ(env, HF_TOKEN=_token()))
    assert first.returncode == 0, first.stderr
    before = env.get()
    rotated = _token()
    environ = _environ(env, HF_TOKEN=rotated)
    # A plan saved with one token applies with another (it holds names and states, not values);
    # without any token the state differs and the saved plan is refused, naming it.
    saved = env.base / "plan.json"
    assert env.run("plan", str(env.manifest), "-o", str(saved), env=_environ(env, HF_TOKEN=_token())).returncode == 0
    unset = env.run("up", "--plan", str(saved), env=_environ(env))
    assert unset.returncode == 5 and "passed[0].state: set → not set" in unset.stderr, unset.stderr
    plan = env.run("plan", str(env.manifest), env=environ)
    assert "→ unchanged" in plan.stdout and "→ skip" in plan.stdout and "→ run:" not in plan.stdout, plan.stdout
    again = env.run("up", str(env.manifest), "--json", env=environ)
    assert again.returncode == 0, again.stderr
    executed = json.loads(again.stdout)["executed"]
    assert ["container", env.container, "unchanged"] in executed
    assert [a for a in executed if a[0] == "setup"] == [["setup", "use the token", "skip"]]
    after = env.get()
    assert (after.id, after.labels["io.envctl.config-hash"]) == (before.id, before.labels["io.envctl.config-hash"])
    applied = env.run("up", "--plan", str(saved), env=environ)
    assert applied.returncode == 0, applied.stderr
    # The entrypoint gets the new value at once.
    assert env.run("exec", "show", "--env", env.container, env=environ).returncode == 0
    assert env.inside("cat /tmp/seen-by-entry") == (0, rotated)


def test_env_file_values_and_the_environment_winning(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    from_file = _token()
    env_file = env.base / "secrets.env"
    env_file.write_text(f"# tokens\nHF_TOKEN={from_file}\nUNRELATED=1\n")
    env_file.chmod(0o644)
    environ = _environ(env)
    plan = env.run("plan", str(env.manifest), "--env-file", str(env_file), env=environ)
    assert plan.returncode == 0, plan.stderr
    assert f"HF_TOKEN (passed, set from {env_file})" in plan.stdout
    assert "can be read by other users (mode 0644)" in plan.stdout
    assert f"{env_file} sets UNRELATED, not in container.pass_env: not passed" in plan.stdout
    env_file.chmod(0o600)
    process = env.popen("up", str(env.manifest), "--env-file", str(env_file), env=environ)
    try:
        _wait_for(lambda: env.get() is not None and env.get().status == "running"
                  and env.inside("test -e /tmp/step-started")[0] == 0, "the setup step starting")
        env.inside("touch /tmp/step-go")
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, out + err
    assert "can be read by other users" not in out + err
    assert env.inside("cat /tmp/seen-by-step") == (0, from_file)
    assert env.run("exec", "show", "--env", env.container, "--env-file", str(env_file), env=environ).returncode == 0
    assert env.inside("cat /tmp/seen-by-entry") == (0, from_file)
    exported = _token()
    shown = env.run("exec", "show", "--env", env.container, "--env-file", str(env_file), env={**environ, "HF_TOKEN": exported})
    assert shown.returncode == 0 and exported not in shown.stdout
    assert env.inside("cat /tmp/seen-by-entry") == (0, exported)  # the caller's environment wins over the file
    bad = env.base / "bad.env"
    bad.write_text("HF_TOKEN=ok\nHF TOKEN=x\n")
    refused = env.run("exec", "show", "--env", env.container, "--env-file", str(bad), env=environ)
    assert refused.returncode == 2
    assert f"{bad}:2: variable name 'HF TOKEN' holds a space or tab" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = env.run("up", str(env.manifest), "--env-file", str(env.base / "absent.env"), env=environ)
    assert missing.returncode == 2 and f"cannot read the env file {env.base / 'absent.env'}" in missing.stderr


@pytest.mark.parametrize("lines", [
    "A=plain\nB=\"double quoted\"\nC='single'\nD=trailing  \n  E=leading spaces dropped\n# F=comment\n\nG=x=y\nH=\n",
    "\ufeffBOM=first line\r\nCRLF=windows\r\nI=${NOT_EXPANDED}\nJ=value # not a comment\n",
])
def test_env_file_read_as_docker_run_reads_it(engine_under_test, tarballs, tmp_path, lines):
    """The same file through `docker run --env-file` on the engine (the Docker CLI's own parser)
    and through envctl's: the same variables and values, byte for byte."""
    from envctl.runtime_env import read_env_file

    engine_under_test.client.images.load(tarballs.plain.read_bytes())  # IMAGE, to run `env` in
    path = tmp_path / "docker.env"
    path.write_bytes(lines.encode("utf-8"))
    seen = subprocess.run(["docker", "run", "--rm", "--env-file", str(path), IMAGE, "env", "-0"], capture_output=True,
                          timeout=120, env={**{k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")},
                                            "DOCKER_HOST": engine_under_test.docker_host})
    assert seen.returncode == 0, seen.stderr
    docker_vars = dict(item.split("=", 1) for item in seen.stdout.decode().split("\0") if item)
    ours = read_env_file(path, {})
    assert {k: docker_vars.get(k) for k in ours} == ours
    assert set(docker_vars) - set(ours) <= {"PATH", "HOSTNAME", "HOME"}


BAKE_BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  pass_env: [HF_TOKEN]
setup:
  - name: needs the token
    run: test -n "$HF_TOKEN" && echo "baking with $HF_TOKEN" && echo "token length $${{#HF_TOKEN}}" > /baked-note
"""


def test_build_passes_the_token_to_steps_and_bakes_none_of_it(make_env, tarballs, engine, tmp_path):
    """`envctl build` runs the steps with the token (a step that needs it passes) and the baked
    image holds it nowhere: not its configuration, not its history, not a byte of `docker save`."""
    env = make_env("cpu")
    env.write(BAKE_BODY.format(image=IMAGE, tarball=tarballs.plain))
    token = _token()
    without = env.run("build", str(env.manifest), env=_environ(env))
    assert without.returncode != 0 and "failed with exit code 1" in without.stderr  # the step needs it
    built = env.run("build", str(env.manifest), env=_environ(env, HF_TOKEN=token))
    assert built.returncode == 0, built.stderr
    assert token not in built.stdout + built.stderr and "baking with ***" in built.stderr
    ref = built.stdout.strip()
    image = engine.images.get(ref)
    assert token not in json.dumps(image.attrs) and token not in json.dumps(image.history())
    saved = tmp_path / "baked.tar"
    with open(saved, "wb") as out:
        for chunk in image.save():
            out.write(chunk)
    assert token.encode() not in saved.read_bytes()
    note = engine.containers.run(ref, ["cat", "/baked-note"], remove=True)
    assert note.decode() == f"token length {len(token)}\n"  # the step did run with it
