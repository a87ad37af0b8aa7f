"""Two `up`s of one environment at once never run a setup step twice or at the same time. The
second `up` observed the container while the first was still in its setup, planned "run: never
ran" for steps the first was running, and ran them again alongside it (the step's side effect
happened twice). Each step now runs under a claim in the container (envctl/setup_steps.py); an
`up` that meets another's claim stops with what changed (exit 5), and a claim left by a process
that is gone is taken over. `plan` sees a live claim (a running exec of the claim wrapper) and
names the step as a blocker, and `status` lists the run by the step's name."""

import json
import time

import pytest

from envctl.errors import WorldChanged
from envctl.plan import RunSetup
from envctl.setup_steps import run_planned
from support import IMAGE

pytestmark = pytest.mark.both_engines

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
setup:
  - name: slow
    # Counts its runs, then waits until the test lets it finish.
    run: echo ran >> /tmp/slow-runs; touch /envctl/slow-started; while [ ! -f /envctl/slow-go ]; do sleep 0.1; done
  - name: after
    run: echo ran >> /tmp/after-runs
"""


def wait_for(path, process):
    while not path.exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)


def test_a_second_up_during_the_first_ones_setup_stops_and_the_step_runs_once(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    workspace = env.base / "workspaces" / env.container
    first = env.popen("up", str(env.manifest))
    wait_for(workspace / "slow-started", first)
    # The plan sees the first `up`'s claim: not ready, naming the step, rather than `run: never ran`.
    planned = env.run("plan", str(env.manifest))
    assert "setup step 1 'slow' is being run by another `up` (pid " in planned.stdout, planned.stdout + planned.stderr
    assert "not ready: 1 blocker(s)" in planned.stdout, planned.stdout
    as_json = json.loads(env.run("plan", str(env.manifest), "--json").stdout)
    assert as_json["ready"] is False
    status = env.run("status", "--json")
    assert status.returncode == 0, status.stderr
    runs = [run for entry in json.loads(status.stdout) if entry["name"] == env.container for run in entry["runs"]]
    assert [(r["kind"], r["name"]) for r in runs] == [("setup", "slow")], runs
    # An `up` whose plan was made just before the first took the claim meets the claim itself.
    claim = env.inside("ls /var/lib/envctl/claims")[1].split()
    assert len(claim) == 1, claim
    index, step_hash = claim[0].split("-", 1)
    late = RunSetup(int(index), "slow", ("/bin/sh", "-c", "echo ran >> /tmp/slow-runs"), None, {}, (), step_hash, "run")
    with pytest.raises(WorldChanged, match=f"setup step 1 'slow' in {env.container}: another `up` is running it now "
                                           r"\(pid [0-9]+ in the container\)"):
        run_planned(env.engine, env.get().id, (late,), lambda line: None)
    second = env.run("up", str(env.manifest))
    assert second.returncode == 5, second.stderr
    # Stopped by its plan, before anything ran (the claim itself still stops an `up` whose plan
    # was made just before the first took the claim).
    assert "setup step 1 'slow' is being run by another `up` (pid " in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    (workspace / "slow-go").touch()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert env.inside("cat /tmp/slow-runs /tmp/after-runs") == (0, "ran\nran\n")
    again = env.run("up", str(env.manifest))
    assert again.returncode == 0, again.stderr
    assert env.inside("cat /tmp/slow-runs /tmp/after-runs") == (0, "ran\nran\n")


def test_a_claim_whose_process_is_gone_is_taken_over(make_env, tarballs):
    """An `up` killed mid-step with its step's process gone (the container restarted, the
    process killed) leaves a claim naming a PID nothing runs as: the next `up` runs the step."""
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    (env.base / "workspaces" / env.container).mkdir(parents=True)
    (env.base / "workspaces" / env.container / "slow-go").touch()
    made = env.run("up", str(env.manifest))
    assert made.returncode == 0, made.stderr
    step = env.inside("ls /var/lib/envctl/setup")[1].split()[0]
    code, output = env.inside(f"rm /var/lib/envctl/setup/*; mkdir -p /var/lib/envctl/claims; "
                              f"echo 999999 > /var/lib/envctl/claims/{step}")
    assert code == 0, output
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert env.inside("cat /tmp/slow-runs") == (0, "ran\nran\n")
    assert env.inside("ls -A /var/lib/envctl/claims") == (0, "")
