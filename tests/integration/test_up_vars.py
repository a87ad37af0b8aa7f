"""`up` with --var and combined variants on a real engine: the container is named, labelled and
configured from them, `exec` and `status` of it resolve the manifest as `up` did, and a later
`up` without the --var values says in its plan that it drops them before it recreates."""

import json

import pytest

from envctl.manifest import docker_values
from envctl.manifest.model import variant_slug
from support import IMAGE

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
vars:
  size: 7B
  steps: 10
default_variant: base
variants:
  base: {{}}
  big:
    vars: {{size: 14B}}
  merged:
    container: {{env: {{MERGED: "1"}}}}
container:
  env:
    MODEL: Qwen-${{size}}
    MERGED: "0"
entrypoints:
  show:
    run: echo "model=$MODEL merged=$MERGED steps=$STEPS"
    params: {{steps: "${{steps}}"}}
"""


@pytest.fixture
def env(make_env, tarballs, engine):
    made = make_env("cpu")
    made.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    yield made
    # make_env removes envctl-<name>; the variants' containers are named after them.
    for container in engine.containers.list(all=True, filters={"label": f"io.envctl.manifest={made.name}"}):
        container.remove(force=True)


def shown(env, reference):
    done = env.run("exec", "show", "--env", reference)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_combination_with_a_var_is_brought_up_remembered_and_run_as_brought_up(env, engine):
    done = env.run("up", f"{env.manifest}:big+merged", "--var", "steps=20")
    assert done.returncode == 0, done.stderr
    name = f"envctl-{env.name}-{variant_slug('big+merged')}"
    assert docker_values.container_name(name) == name
    container = engine.containers.get(name)
    assert container.labels["io.envctl.variant"] == "big+merged"
    assert json.loads(container.labels["io.envctl.vars"]) == {"steps": "20"}
    # exec resolves the manifest with the environment's variant and vars, not the manifest's defaults
    assert shown(env, f"{env.name}:big+merged") == "model=Qwen-14B merged=1 steps=20"
    status = env.run("status", "--json")
    rows = [r for r in json.loads(status.stdout) if r["name"] == name]
    assert rows and rows[0]["manifest"] == f"{env.name}:big+merged" and rows[0]["vars"] == {"steps": "20"}
    text = env.run("status")
    assert f"{env.name}:big+merged --var steps=20" in text.stdout
    # another order is another environment, beside the first
    done = env.run("up", f"{env.manifest}:merged+big")
    assert done.returncode == 0, done.stderr
    assert shown(env, f"{env.name}:merged+big") == "model=Qwen-14B merged=1 steps=10"
    assert engine.containers.get(name).status == "running"


def test_a_later_up_without_the_var_says_so_in_its_plan_before_it_recreates(env, engine):
    first = env.run("up", str(env.manifest), "--var", "size=3B")
    assert first.returncode == 0, first.stderr
    name = f"envctl-{env.name}-base"
    created = engine.containers.get(name).id
    assert shown(env, env.name) == "model=Qwen-3B merged=0 steps=10"

    again = env.run("up", str(env.manifest), "--var", "size=3B")
    assert again.returncode == 0 and f"container  {name}: unchanged" in again.stderr, again.stderr

    planned = env.run("plan", str(env.manifest))
    assert planned.returncode == 0, planned.stderr
    assert "--var size=3B dropped (the manifest's value now)" in planned.stdout
    assert engine.containers.get(name).id == created  # plan changes nothing

    planned_with = env.run("plan", str(env.manifest), "--var", "size=3B")
    assert f"plan: {env.name} (variant base) with --var size=3B" in planned_with.stdout

    dropped = env.run("up", str(env.manifest))
    assert dropped.returncode == 0, dropped.stderr
    assert "--var size=3B dropped" in dropped.stderr
    container = engine.containers.get(name)
    assert container.id != created and "io.envctl.vars" not in container.labels
    assert shown(env, env.name) == "model=Qwen-7B merged=0 steps=10"

    # a value equal to the manifest's own is no override: nothing to recreate
    same = env.run("up", str(env.manifest), "--var", "size=7B")
    assert same.returncode == 0 and f"container  {name}: unchanged" in same.stderr, same.stderr


def test_up_dry_run_with_var_and_combination_changes_nothing(env, engine):
    done = env.run("up", f"{env.manifest}:big+merged", "--var", "steps=5", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"plan: {env.name} (variant big+merged) with --var steps=5" in done.stdout
    assert "io.envctl.vars={\"steps\": \"5\"}" in done.stdout
    assert not engine.containers.list(all=True, filters={"label": f"io.envctl.manifest={env.name}"})


def test_a_saved_plan_brings_the_environment_up_with_its_vars(env, engine, tmp_path):
    saved = tmp_path / "plan.json"
    planned = env.run("plan", str(env.manifest), "--var", "size=3B", "-o", str(saved))
    assert saved.exists(), planned.stderr
    assert json.loads(saved.read_text())["vars"] == {"size": "3B"}
    done = env.run("up", "--plan", str(saved))
    assert done.returncode == 0, done.stderr
    assert json.loads(engine.containers.get(f"envctl-{env.name}-base").labels["io.envctl.vars"]) == {"size": "3B"}
    assert shown(env, env.name) == "model=Qwen-3B merged=0 steps=10"


def test_an_environment_whose_var_the_manifest_dropped_says_so_at_exec(env):
    assert env.run("up", str(env.manifest), "--var", "steps=20").returncode == 0
    env.manifest.write_text(env.manifest.read_text().replace("  steps: 10\n", "").replace('"${steps}"', "1"))
    done = env.run("exec", "show", "--env", env.name)
    assert done.returncode == 3, done.stderr  # the manifest, as this environment resolves it, is not valid
    assert (f"error: envctl-{env.name}-base was brought up with --var steps=20, which its manifest no longer takes: "
            f"--var steps: {env.name}:base has no var 'steps'") in done.stderr
    assert f"envctl up {env.name}:base" in done.stderr and "Traceback" not in done.stderr
