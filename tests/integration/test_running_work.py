"""Running work is protected: an entrypoint running in an environment's container blocks `up`
(when it would recreate the container) and `down`, unless --force; `status` lists it. On real
engines, with runs started as users start them (`envctl exec`, `docker exec`, a process left in
the background by a shell)."""

import json
import subprocess
import time

import pytest

from support import IMAGE

pytestmark = pytest.mark.both_engines

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  env: {{LEARNING_RATE: "{rate}"}}
entrypoints:
  train:
    # Runs until the test releases it, then ends with its own exit code.
    run: echo started; while [ ! -f /envctl/release ]; do sleep 0.2; done; echo done; exit 7
  quick:
    run: echo quick
"""


def write(env, tarballs, rate="1e-4"):
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, rate=rate))


def up(env, tarballs, *extra, rate="1e-4"):
    write(env, tarballs, rate)
    done = env.run("up", str(env.manifest), *extra)
    assert done.returncode == 0, done.stderr
    return done


def start_training(env):
    """`envctl exec train` in the background, returned once the entrypoint printed `started`."""
    training = env.popen("exec", "--env", env.container, "train")
    line = training.stdout.readline()
    assert line == "started\n", training.stderr.read() if not line else line
    return training


def release(env, training) -> tuple[int, str]:
    """Let the training finish; its exit code and the rest of its output."""
    code, output = env.inside("touch /envctl/release")
    assert code == 0, output
    out, err = training.communicate(timeout=60)
    return training.returncode, out


def status_runs(env) -> list[dict]:
    shown = env.run("status", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [r for r in json.loads(shown.stdout) if r["name"] == env.container]
    assert len(rows) == 1, shown.stdout
    return rows[0]["runs"]


def test_status_names_a_running_entrypoint_and_forgets_it_when_it_ends(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    assert status_runs(env) == []
    training = start_training(env)
    try:
        runs = status_runs(env)
        assert [(r["kind"], r["name"]) for r in runs] == [("entrypoint", "train")], runs
        run = runs[0]
        assert run["log"].startswith(str(env.base / "workspaces" / env.container / "logs" / "train-"))
        assert run["since"].endswith("Z") and run["by"]
        code, pid_file = env.inside(f"grep -lx {run['pid']} /var/lib/envctl/exec/*")
        assert code == 0, f"no PID file holds {run['pid']}"
        text = env.run("status")
        assert f"running train since {run['since'][:10]} " in text.stdout
        assert f"(pid {run['pid']}, log {run['log']}, by {run['by']})" in text.stdout
    finally:
        code, out = release(env, training)
    assert (code, out) == (7, "done\n")
    assert status_runs(env) == []  # a finished run blocks nothing


def test_down_is_refused_while_an_entrypoint_runs_and_force_removes(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    training = start_training(env)
    try:
        refused = env.run("down", env.container)
        assert refused.returncode == 5, refused.stderr
        assert f"error: removing {env.container} would kill running work: train since " in refused.stderr
        assert "`--force` to do it anyway" in refused.stderr
        assert f"envctl down {env.container} --force" in refused.stderr
        assert env.get().status == "running"
        assert training.poll() is None  # the training is unharmed
        forced = env.run("down", env.container, "--force")
        assert forced.returncode == 0, forced.stderr
        assert "stopped train since " in forced.stderr
        assert env.get() is None
        assert training.wait(timeout=60) != 0  # killed with the container
    finally:
        if training.poll() is None and env.get() is not None:
            release(env, training)


def test_work_started_without_envctl_exec_is_running_work_too(make_env, tarballs):
    """`docker exec` by hand, and a process a shell left in the background (`nohup ... &`, then
    the shell exited): the engine has no exec for the latter, only a process beside the init."""
    env = make_env("cpu")
    up(env, tarballs)
    environ = env.environ()
    by_hand = subprocess.Popen(["docker", "exec", env.container, "sh", "-c", "echo begun; exec sleep 600"],
                               stdout=subprocess.PIPE, text=True, env=environ)
    try:
        assert by_hand.stdout.readline() == "begun\n"
        code, out = env.inside("setsid sleep 700 </dev/null >/dev/null 2>&1 &")
        assert code == 0, out
        runs = status_runs(env)
        assert sorted((r["kind"], r["name"]) for r in runs) == [("exec", "sh -c echo begun; exec sleep 600"),
                                                                ("process", "sleep 700")], runs
        assert all(r["host_pid"] or r["pid"] for r in runs)  # the host's PID (docker top) or the container's (/proc)
        refused = env.run("down", env.container)
        assert refused.returncode == 5
        assert "docker exec sh -c echo begun; exec sleep 600 " in refused.stderr and "process sleep 700 since " in refused.stderr
    finally:
        by_hand.kill()
        by_hand.wait()


def test_a_run_outlives_its_client_and_a_restart_leaves_no_run_behind(make_env, tarballs):
    """The run record lives in the engine's exec, not in the envctl process: a run whose
    `envctl exec` was killed (a closed laptop, a lost SSH session) still blocks. A restart ends
    it; its PID file stays in the container's filesystem, but the engine clears the container's
    execs, so the stale file blocks nothing."""
    env = make_env("cpu")
    up(env, tarballs)
    training = start_training(env)
    training.kill()  # SIGKILL: envctl cleans nothing up
    training.wait()
    assert [r["name"] for r in status_runs(env)] == ["train"]
    env.get().restart(timeout=1)
    code, listing = env.inside("ls /var/lib/envctl/exec")
    assert code == 0 and listing.strip(), "the PID file should still be there for this test to mean anything"
    assert status_runs(env) == []
    assert env.run("down", env.container).returncode == 0


def test_editing_the_manifest_while_training_blocks_plan_and_up_and_the_training_lives(make_env, tarballs):
    """The scenario of issue 11: one env value changed while `envctl exec train` runs."""
    env = make_env("cpu")
    up(env, tarballs)
    before = env.get().id
    training = start_training(env)
    try:
        write(env, tarballs, rate="3e-4")
        planned = env.run("plan", str(env.manifest))
        assert planned.returncode == 5, planned.stderr
        run = status_runs(env)[0]
        assert "→ recreate: changed: env LEARNING_RATE" in planned.stdout
        blocker = (f"recreating {env.container} would kill running work: train since "
                   f"{run['since'].replace('T', ' ').replace('Z', ' UTC')} (pid {run['pid']}, log {run['log']}, "
                   f"by {run['by']}); `--force` to do it anyway")
        assert f"  - {blocker}" in planned.stdout
        as_json = json.loads(env.run("plan", str(env.manifest), "--json").stdout)
        assert as_json["container_action"]["action"] == "recreate" and blocker in as_json["blockers"]
        refused = env.run("up", str(env.manifest))
        assert refused.returncode == 5
        assert blocker in refused.stderr
        assert env.get().id == before and env.get().status == "running"  # nothing changed
        assert training.poll() is None
    finally:
        code, out = release(env, training)
    assert (code, out) == (7, "done\n")  # the training ended on its own, with its own exit code
    done = env.run("up", str(env.manifest))  # a finished run blocks nothing
    assert done.returncode == 0, done.stderr
    assert "recreated: env LEARNING_RATE changed" in done.stderr and env.get().id != before


def test_an_up_that_keeps_the_container_is_not_blocked(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    training = start_training(env)
    try:
        again = env.run("up", str(env.manifest))
        assert again.returncode == 0, again.stderr
        assert "container  " + env.container + ": unchanged" in again.stderr
        assert training.poll() is None
    finally:
        assert release(env, training)[0] == 7


def test_up_force_recreates_and_names_what_it_killed(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    before = env.get().id
    training = start_training(env)
    try:
        write(env, tarballs, rate="3e-4")
        planned = env.run("plan", str(env.manifest), "--force")
        assert planned.returncode == 0, planned.stdout
        assert "kills (--force): train since " in planned.stdout
        assert "recreate (env LEARNING_RATE), killing 1 running (--force)" in planned.stdout
        forced = env.run("up", str(env.manifest), "--force")
        assert forced.returncode == 0, forced.stderr
        assert "stopped    train since " in forced.stderr
        assert env.get().id != before
        assert training.wait(timeout=60) != 0  # killed with the old container
    finally:
        if training.poll() is None and env.get() is not None:
            release(env, training)


def test_work_started_after_the_plan_stops_up_before_it_removes_anything(make_env, tarballs, engine):
    """The last check, under the environment's lock right before removal: only the runs the plan
    accepted (with --force) may be killed."""
    from envctl.runs import RunningWork, refuse_unplanned, running_work

    env = make_env("cpu")
    up(env, tarballs)
    container = env.get()
    refuse_unplanned(engine, container, env.container, ())  # nothing runs: nothing to refuse
    training = start_training(env)
    try:
        accepted = running_work(engine, container)
        refuse_unplanned(engine, container, env.container, accepted)
        with pytest.raises(RunningWork) as refused:
            refuse_unplanned(engine, container, env.container, ())
        assert "would kill running work: train since " in refused.value.message
        assert "run `envctl plan` again" in refused.value.hint
        second = env.popen("exec", "--env", env.container, "quick")
        assert second.wait(timeout=60) == 0  # a run that came and went meanwhile changes nothing
        refuse_unplanned(engine, container, env.container, accepted)
    finally:
        assert release(env, training)[0] == 7


def test_a_saved_forced_plan_applies_while_the_same_work_runs(make_env, tarballs):
    """`plan --force -o FILE`, reviewed, then `up --plan FILE --force`: the observation is made
    twice, and the plan must come out the same although a background process's start time is
    derived from the seconds it has been running."""
    env = make_env("cpu")
    up(env, tarballs)
    training = start_training(env)
    try:
        code, out = env.inside("setsid sleep 700 </dev/null >/dev/null 2>&1 &")
        assert code == 0, out
        write(env, tarballs, rate="3e-4")
        saved = env.base / f"{env.name}-plan.json"
        planned = env.run("plan", str(env.manifest), "--force", "-o", str(saved))
        assert planned.returncode == 0, planned.stdout
        assert "kills (--force): process sleep 700 (" in planned.stdout
        time.sleep(1.5)  # not a timing assertion: makes the elapsed seconds differ between the two observations
        without = env.run("up", "--plan", str(saved))
        assert without.returncode == 5 and "nothing was done" in without.stderr  # --force is given again, or nothing
        applied = env.run("up", "--plan", str(saved), "--force")
        assert applied.returncode == 0, applied.stderr
        assert "stopped    train since " in applied.stderr and "stopped    process sleep 700" in applied.stderr
    finally:
        if training.poll() is None and env.get() is not None:
            release(env, training)
        training.wait(timeout=60)
