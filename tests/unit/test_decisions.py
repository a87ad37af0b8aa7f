"""The plan's decisions, state by state, on an in-memory engine (tests/fake_engine.py): which
action each step gets and why. What `up` then does on a real engine is held to these same
actions in tests/integration/test_plan_is_what_up_does.py."""

import os
import textwrap

import pytest

from fake_engine import FakeEngine
from envctl.containers import LABEL_HASH, LABEL_IMAGE_ID, LABEL_MANIFEST, LABEL_SPEC
from envctl.hosts.local import LocalHost
from envctl.manifest.loader import load
from envctl.markers import FAILED_SUFFIX, marker_name
from envctl.observe import observe
from envctl.plan import build_plan
from envctl.summary import planned_actions, summary_lines

IMAGE_ID = "sha256:" + "a" * 64
MANIFEST = """\
name: decide
description: decisions under test
device: {kind: cpu}
image: {ref: "lab/base:1", id: "%s"}
container:
  env: {GREETING: %s}
setup:
  - {name: first, run: "echo 1"}
  - {name: second, run: "echo %s"}
"""


@pytest.fixture
def world(tmp_path, clean_env):
    environ = {**clean_env, "ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_WORKSPACE": str(tmp_path / "ws")}
    (tmp_path / "root").mkdir()

    def plan(engine, greeting="hello", second="2", extra=""):
        path = tmp_path / "decide.yaml"
        path.write_text(MANIFEST % (IMAGE_ID, greeting, second) + textwrap.dedent(extra))
        loaded = load(str(path), environ=environ)
        return build_plan(loaded, observe(LocalHost(str(tmp_path / "root")), loaded, engine, environ=environ), environ=environ)

    return plan


def with_container(engine, plan, status="running", markers=None, image_id=IMAGE_ID):
    import json

    labels = {LABEL_MANIFEST: plan.manifest, LABEL_HASH: plan.container.config_hash(), LABEL_IMAGE_ID: image_id,
              LABEL_SPEC: json.dumps(plan.container.summary(), sort_keys=True, default=list)}
    if markers is None:
        markers = [marker_name(s.index, s.step_hash) for s in plan.setup]
    engine.add_container(plan.container.name, labels, status, tuple(markers))
    os.makedirs(plan.workspace, exist_ok=True)  # as the up that made the container made it


def actions(plan):
    return [a[2] for a in planned_actions(plan)]


def test_fresh_host(world):
    engine = FakeEngine()
    plan = world(engine)
    assert actions(plan) == ["missing", "create", "run", "run"]
    assert plan.image.reason == "not on the engine; the manifest gives no tarball or build and does not pull it (image.pull)"
    assert plan.blockers  # nothing can provide the image


def test_the_pinned_image_under_another_name_is_tagged(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:old")
    assert actions(world(engine))[:2] == ["tag", "create"]


def test_nothing_to_do(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    with_container(engine, world(engine))
    plan = world(engine)
    assert actions(plan) == ["present", "unchanged", "skip", "skip"]
    assert "container  envctl-decide  unchanged" in "\n".join(summary_lines(plan))


def test_changed_env_recreates_naming_the_variable(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    with_container(engine, world(engine))
    plan = world(engine, greeting="bonjour")
    assert actions(plan) == ["present", "recreate", "run", "run"]
    assert plan.container_action.changes == ("env GREETING",)
    assert [s.reason for s in plan.setup] == ["never ran (new container)"] * 2


def test_changed_setup_step_runs_from_there(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    with_container(engine, world(engine))
    plan = world(engine, second="3")
    assert [(s.action, s.reason) for s in plan.setup] == [("skip", "unchanged since it ran"), ("run", "changed")]


def test_a_step_after_a_changed_one_runs_too(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    before = world(engine, extra="")
    with_container(engine, before)
    plan = world(engine, greeting="hello", second="2", extra="")  # same plan: first unchanged
    assert [s.action for s in plan.setup] == ["skip", "skip"]
    only_second = [marker_name(before.setup[1].index, before.setup[1].step_hash)]
    engine.containers_.clear()
    with_container(engine, before, markers=only_second)
    plan = world(engine)
    assert [(s.action, s.reason) for s in plan.setup] == [("run", "never ran"), ("run", "after a changed step")]


def test_a_step_that_failed_last_time_says_so(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    plan = world(engine)
    first = marker_name(plan.setup[0].index, plan.setup[0].step_hash)
    failed = marker_name(plan.setup[1].index, plan.setup[1].step_hash) + FAILED_SUFFIX
    with_container(engine, plan, markers=[first, failed])
    assert [(s.action, s.reason) for s in world(engine).setup] == [("skip", "unchanged since it ran"),
                                                                   ("run", "failed last time")]


@pytest.mark.parametrize("status", ["exited", "created"])
def test_a_container_not_running_is_started(world, status):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    with_container(engine, world(engine), status=status)
    plan = world(engine)
    assert plan.container_action.action == "start" and status in plan.container_action.reason


def test_a_container_of_another_image_is_recreated(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    with_container(engine, world(engine), image_id="sha256:" + "b" * 64)
    plan = world(engine)
    assert plan.container_action.action == "recreate"
    assert plan.container_action.changes[0].startswith("image sha256:bbbbbbbbbbbb → sha256:aaaaaaaaaaaa")


def test_a_baked_image_skips_every_step(world):
    from envctl.containers import LABEL_BAKE_KEY, LABEL_BAKED_FOR
    from envctl.plan import bake_key

    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    key = bake_key(IMAGE_ID, world(engine).setup)
    engine.add_image("sha256:" + "c" * 64, f"envctl-baked/decide:{key}", labels={LABEL_BAKED_FOR: "decide", LABEL_BAKE_KEY: key})
    plan = world(engine)
    assert plan.baked == f"envctl-baked/decide:{key}"
    assert actions(plan) == ["present", "create", "skip", "skip"]
    assert plan.setup[0].reason == "inside the baked image"


def test_a_missing_artifact_is_named_and_the_others_are_fetched(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    plan = world(engine, extra="""\
        artifacts:
          weights: {target: /models, obtain: ask the lab}
          code: {source: "https://example.org/code.tar", target: /code}
        """)
    by_name = {a.name: (a.action, a.reason) for a in plan.artifacts}
    assert by_name == {"weights": ("missing", "no source yet: it must be provided"), "code": ("fetch", "not in the cache")}
    assert "missing: weights" in summary_lines(plan)[0]


def test_artifacts_of_one_source_fetch_it_once(world):
    """Two artifacts of one source (read-only, and a writable copy) share one cache entry: the
    first fetches, the others find it there; `up` reports the same (the bytes move once)."""
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    plan = world(engine, extra="""\
        artifacts:
          data: {source: "https://example.org/d.tar", target: /data}
          scratch: {source: "https://example.org/d.tar", target: /scratch, mode: rw}
          again: {source: "https://example.org/d.tar", target: /again}
          other: {source: "https://example.org/o.tar", target: /other, mode: rw}
        """)
    by_name = {a.name: a.action for a in plan.artifacts}
    assert by_name == {"data": "fetch", "scratch": "copy", "again": "cached", "other": "fetch+copy"}
    assert [a.reason for a in plan.artifacts][1:3] == [
        "the same source as data, which brings its bytes first; then a writable copy",
        "the same source as data, which brings its bytes first"]
    assert summary_lines(plan)[0].split()[:3] == ["fetch", "2", "artifact(s),"]  # data and other


def test_without_an_engine_the_plan_says_unknown_and_why(world):
    plan = world(None)
    assert actions(plan) == ["unknown", "unknown", "unknown", "unknown"]


def test_without_an_engine_the_plan_text_does_not_say_ready(world):
    """The engine-less plan printed `blockers none` and `ready: up can proceed`, and then `up`
    stopped at once: the engine is what up needs first."""
    from envctl.render import plan_text

    plan = world(None)
    lines = summary_lines(plan)
    assert lines[-1] == "  engine     could not be asked: image, container and setup are unknown (the image step says why)"
    text = plan_text(plan)
    assert "ready: up can proceed" not in text
    assert text.rstrip().endswith("undecided: the engine could not be asked, so the image, the container and the setup "
                                  "steps are unknown; up needs the engine")
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    assert "engine     could not" not in "\n".join(summary_lines(world(engine)))
    assert plan_text(world(engine)).rstrip().endswith("ready: up can proceed")


@pytest.mark.parametrize("pinned", [
    'image: {ref: "lab/base:1", id: "%s"}' % IMAGE_ID,  # image.id pins the image already run
    'image: {ref: "lab/base:1", tarball: {source: /srv/base.tar, sha256: "%s"}}' % ("c" * 64),  # envctl lock's record
])
def test_pinning_the_image_already_run_reruns_no_setup_step(tmp_path, clean_env, pinned):
    """`envctl lock` (recording the image tarball's sha256) or an image.id pin of the image the
    container runs re-ran every setup step: the image was part of each step's hash. A changed
    image recreates the container (its image-id label), which runs every step anyway."""
    environ = {**clean_env, "ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_WORKSPACE": str(tmp_path / "ws")}
    (tmp_path / "root").mkdir()
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")

    def plan(image_line):
        path = tmp_path / "decide.yaml"
        text = MANIFEST % (IMAGE_ID, "hello", "2")
        path.write_text(text.replace('image: {ref: "lab/base:1", id: "%s"}' % IMAGE_ID, image_line))
        loaded = load(str(path), environ=environ)
        return build_plan(loaded, observe(LocalHost(str(tmp_path / "root")), loaded, engine, environ=environ), environ=environ)

    before = plan('image: {ref: "lab/base:1", tarball: {source: /srv/base.tar}}')
    with_container(engine, before)
    after = plan(pinned)
    assert [s.step_hash for s in after.setup] == [s.step_hash for s in before.setup]
    assert actions(after)[-3:] == ["unchanged", "skip", "skip"]


@pytest.mark.parametrize("mode, action", [("ro", "fetch"), ("rw", "fetch+copy")])
def test_an_artifact_placed_again_restarts_a_running_container_and_keeps_its_steps(world, mode, action):
    """An artifact fetched again (its cache entry was removed, or a changed source) is placed at
    the same path under a new inode: a running container's bind mount kept the old one (an
    empty directory, the old bytes) while up said 'unchanged'. A restart mounts the sources
    anew and keeps the container's filesystem, so no setup step re-runs; a stopped container
    is started, which mounts them too."""
    extra = f"artifacts:\n  weights:\n    source: /srv/weights\n    target: /models/weights\n    mode: {mode}\n"
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    plan = world(engine, extra=extra)
    with_container(engine, plan)
    again = world(engine, extra=extra)
    assert actions(again) == [action, "present", "restart", "skip", "skip"]
    assert again.container_action.reason.startswith("artifact(s) weights placed again")
    stopped = FakeEngine()
    stopped.add_image(IMAGE_ID, "lab/base:1")
    with_container(stopped, plan, status="exited")
    assert actions(world(stopped, extra=extra)) == [action, "present", "start", "skip", "skip"]


# A step another `up` runs now (interrupted, or concurrent): its claim wrapper is a running exec
# (ProcessConfig as Docker 20.10 answers ExecInspect, moby api/swagger.yaml) and its claim file
# holds the wrapper's PID in the container. `up` would meet the claim and stop, so the plan says
# so instead of `run: never ran` and ready.
CLAIMED_AT = 1796040180  # 2026-11-30 12:03:00 UTC


def second_step_claimed(engine, plan, exec_running=True, claim=b"77\n"):
    from envctl.markers import CLAIM_DIR, CLAIM_WRAPPER, marker_path

    first, second = plan.setup
    with_container(engine, plan, markers=[marker_name(first.index, first.step_hash)])
    container = engine.containers_[-1]
    name = marker_name(second.index, second.step_hash)
    if claim is not None:
        container.files[f"{CLAIM_DIR}/{name}"] = claim
        container.mtimes[f"{CLAIM_DIR}/{name}"] = CLAIMED_AT
    if exec_running:
        container.execs["claimed"] = {
            "ID": "claimed", "Running": True, "ExitCode": None, "Pid": 9300,
            "ProcessConfig": {"tty": False, "entrypoint": "sh", "privileged": False,
                              "arguments": ["-c", CLAIM_WRAPPER, f"{CLAIM_DIR}/{name}", marker_path(second.index, second.step_hash),
                                            "second", *second.argv]}}
        container.processes.append(["9300", "4200", "30", "S", "sh -c mkdir -p \"${0%/*}\" || exit 1; ..."])
    return container


def test_a_step_another_up_is_running_blocks_the_plan_naming_it(world):
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    second_step_claimed(engine, world(engine))
    plan = world(engine)
    assert actions(plan) == ["present", "unchanged", "skip", "run"]
    assert plan.blockers == ("setup step 2 'second' is being run by another `up` (pid 77 since 2026-11-30 12:03:00 UTC); "
                             "wait for it to finish (`envctl status` lists it), then run `envctl plan` again",)


def test_a_claim_whose_process_is_gone_does_not_block(world):
    """The claim file outlived its wrapper (an `up` killed with its step, a restart): `up` takes
    it over, so the plan runs the step and is ready."""
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    second_step_claimed(engine, world(engine), exec_running=False)
    plan = world(engine)
    assert actions(plan) == ["present", "unchanged", "skip", "run"]
    assert plan.setup[1].reason == "never ran"
    assert plan.blockers == ()


def test_a_running_step_whose_claim_cannot_be_read_still_blocks_by_its_exec(world):
    """The wrapper has not written its claim yet (or wrote no PID): the exec alone tells."""
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    second_step_claimed(engine, world(engine), claim=None)
    (blocker,) = world(engine).blockers
    assert blocker.startswith("setup step 2 'second' is being run by another `up` (host pid 9300 since ")


def test_status_and_the_recreate_blocker_name_the_step_not_the_wrapper(world):
    from envctl.runs import running_work

    engine = FakeEngine()
    engine.add_image(IMAGE_ID, "lab/base:1")
    container = second_step_claimed(engine, world(engine))
    (run,) = running_work(engine, container.id)
    assert (run.kind, run.name, run.step) == ("setup", "second", marker_name(1, world(engine).setup[1].step_hash))
    assert run.describe().startswith("setup step 'second' since ")
    changed = world(engine, greeting="bye")  # recreating kills the step: the running-work blocker names it
    assert actions(changed)[1] == "recreate"
    (blocker,) = changed.blockers
    assert "would kill running work: setup step 'second' since 2026-11-30 12:03:00 UTC (pid 77)" in blocker
    assert "mkdir" not in blocker
