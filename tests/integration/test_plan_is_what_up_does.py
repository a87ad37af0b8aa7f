"""`plan`, `up --dry-run` and `up` decide alike: for each scenario the actions `up` executed
(its --json report) equal the actions `up --dry-run --json` and `plan --json` printed for the
same state, and `plan` and `up --dry-run` print the same plan. Saved plans apply or refuse."""

import json

import pytest

from support import IMAGE

SETUP = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  env: {{GREETING: "{greeting}"}}
setup:
  - name: first
    run: echo first > /tmp/first
  - name: second
    run: echo {second} > /tmp/second
"""


def write(env, tarball, greeting="hello", second="two", extra=""):
    return env.write(SETUP.format(image=IMAGE, tarball=tarball, greeting=greeting, second=second) + extra)


def actions(plan: dict) -> list[list[str]]:
    """The plan's actions in the order up executes them (envctl.summary.planned_actions)."""
    out = [["artifact", a["name"], a["action"]] for a in plan["artifacts"]]
    out.append(["image", plan["image"]["ref"], "present" if plan["baked"] else plan["image"]["action"]])
    out.append(["container", plan["container"]["name"], plan["container_action"]["action"]])
    return out + [["setup", s["name"], s["action"]] for s in plan["setup"]]


def planned_then_done(env) -> tuple[list, list, dict]:
    """Plan (both ways, compared), then up; returns (printed actions, executed actions, plan)."""
    dry = env.run("up", "--dry-run", "--json", str(env.manifest))
    shown = env.run("plan", "--json", str(env.manifest))
    assert dry.stdout == shown.stdout, "plan and up --dry-run printed different plans"
    plan = json.loads(dry.stdout)
    done = env.run("up", "--json", str(env.manifest))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["planned"] == actions(plan)
    return actions(plan), report["executed"], plan


def test_fresh_host_then_nothing_to_do(make_env, tarballs, no_image):
    env = make_env("cpu")
    write(env, tarballs.plain)
    planned, executed, plan = planned_then_done(env)
    assert planned == executed
    assert [a[2] for a in planned] == ["load", "create", "run", "run"]
    assert plan["summary"]["container"]["action"] == "create"
    planned, executed, _ = planned_then_done(env)
    assert planned == executed == [["image", IMAGE, "present"], ["container", env.container, "unchanged"],
                                   ["setup", "first", "skip"], ["setup", "second", "skip"]]


def test_changed_env_recreates_and_says_which_field(make_env, tarballs, no_image):
    env = make_env("cpu")
    write(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    write(env, tarballs.plain, greeting="bonjour")
    planned, executed, plan = planned_then_done(env)
    assert planned == executed
    assert plan["container_action"]["action"] == "recreate"
    assert plan["container_action"]["changes"] == ["env GREETING"]
    assert [a[2] for a in planned[2:]] == ["run", "run"]  # a new container runs its setup again


def test_changed_setup_step_runs_it_alone(make_env, tarballs, no_image):
    env = make_env("cpu")
    write(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    write(env, tarballs.plain, second="deux")
    planned, executed, plan = planned_then_done(env)
    assert planned == executed
    assert [(s["action"], s["reason"]) for s in plan["setup"]] == [("skip", "unchanged since it ran"), ("run", "changed")]
    assert env.inside("cat /tmp/second") == (0, "deux\n")


def test_a_stopped_container_is_started_as_planned(make_env, tarballs, no_image):
    env = make_env("cpu")
    write(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    env.get().stop(timeout=0)
    planned, executed, _ = planned_then_done(env)
    assert planned == executed
    assert planned[1][2] == "start"


def test_a_removed_writable_copy_is_copied_again_as_planned(make_env, tarballs, no_image, tmp_path):
    """The workspace copy of a `mode: rw` artifact (a bind mount's source) deleted by hand: the
    plan says copy and still knows which setup steps ran; up copies it and runs nothing else."""
    env = make_env("cpu")
    source = tmp_path / "config.json"
    source.write_text('{"hidden_size": 64}\n')
    write(env, tarballs.plain, extra=f"artifacts:\n  config: {{source: {source}, target: /models/config.json, mode: rw}}\n")
    assert env.run("up", str(env.manifest)).returncode == 0
    copy = next((tmp_path / "workspaces").rglob("artifacts/config"))
    copy.unlink()
    planned, executed, _ = planned_then_done(env)
    assert planned == executed
    # The container is restarted: until then its bind mount shows the deleted copy.
    assert planned[2] == ["container", env.container, "restart"]
    assert planned[:2] + planned[3:] == [["artifact", "config", "copy"], ["image", IMAGE, "present"],
                                         ["setup", "first", "skip"], ["setup", "second", "skip"]]
    assert copy.read_text() == source.read_text()


def test_a_missing_artifact_blocks_before_anything_runs(make_env, tarballs, no_image, engine):
    env = make_env("cpu")
    write(env, tarballs.plain, extra="artifacts:\n  weights:\n    target: /models\n    obtain: ask the lab for them\n")
    dry = env.run("up", "--dry-run", "--json", str(env.manifest))
    plan = json.loads(dry.stdout)
    assert plan["artifacts"][0]["action"] == "missing"
    assert plan["summary"]["artifacts"]["missing"] == ["weights"]
    done = env.run("up", "--json", str(env.manifest))
    assert done.returncode == 5 and "weights has no source" in done.stderr, done.stderr
    assert env.get() is None


def test_a_container_removed_after_the_plan_stops_up_and_says_so(make_env, tarballs, no_image, tmp_path):
    env = make_env("cpu")
    write(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    saved = tmp_path / "plan.json"
    made = env.run("plan", str(env.manifest), "-o", str(saved))
    assert made.returncode == 0, made.stderr
    env.get().remove(force=True)
    refused = env.run("up", "--plan", str(saved))
    assert refused.returncode == 5, refused.stderr
    assert "changed since" in refused.stderr and "container_action.action: unchanged → create" in refused.stderr
    assert env.get() is None  # nothing was done


def test_a_saved_plan_applies_exactly_when_nothing_changed_and_names_a_manifest_change(make_env, tarballs, no_image,
                                                                                      tmp_path):
    env = make_env("cpu")
    write(env, tarballs.plain)
    saved = tmp_path / "plan.json"
    assert env.run("plan", str(env.manifest), "-o", str(saved)).returncode == 0
    done = env.run("up", "--plan", str(saved), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["executed"] == actions(json.loads(saved.read_text())["plans"]["local"])
    assert env.run("plan", str(env.manifest), "-o", str(saved)).returncode == 0
    write(env, tarballs.plain, greeting="hola")
    refused = env.run("up", "--plan", str(saved))
    assert refused.returncode == 5
    assert "container.env.GREETING: hello → hola" in refused.stderr, refused.stderr


@pytest.mark.parametrize("bad", ["{}", "not json", '{"format": "envctl-plan/1"}'])
def test_a_file_that_is_not_a_saved_plan_is_refused(make_env, tmp_path, bad):
    env = make_env("cpu")
    path = tmp_path / "plan.json"
    path.write_text(bad)
    refused = env.run("up", "--plan", str(path))
    assert refused.returncode == 2 and "is not a saved plan" in refused.stderr, refused.stderr


def test_envctl_lock_after_up_reruns_no_setup_step(make_env, tarballs, no_image):
    """`envctl lock` records the image tarball's sha256; the next plan re-ran every setup step
    (the image was part of each step's hash) although the container runs the same image."""
    env = make_env("cpu")
    write(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    locked = env.run("lock", str(env.manifest))
    assert locked.returncode == 0, locked.stderr
    printed, executed, plan = planned_then_done(env)
    assert plan["image"]["sha256"], "the lock recorded the tarball's sha256"
    assert printed == executed == [["image", IMAGE, "present"], ["container", env.container, "unchanged"],
                                   ["setup", "first", "skip"], ["setup", "second", "skip"]]
