"""Running work in the plan, on an in-memory engine (tests/fake_engine.py) that answers as Docker
20.10 does: `exec_inspect` with ProcessConfig/Running/Pid (moby api/swagger.yaml, ExecInspect;
captured from docker.io 20.10.24), `docker top` rows of procps `ps -o pid,ppid,etimes,stat,args`.
The same cases on real engines: tests/integration/test_running_work.py."""

import json
import os
import shutil
from pathlib import Path

import pytest

from fake_engine import FakeEngine
from envctl.containers import LABEL_HASH, LABEL_IMAGE_ID, LABEL_MANIFEST, LABEL_SPEC, LABEL_WORKSPACE_MARK
from envctl.hosts.local import LocalHost
from envctl.manifest.loader import load
from envctl.observe import observe
from envctl.plan import Options, build_plan
from envctl.render import plan_json, plan_text
from envctl.runs import PROC_SCRIPT, WRAPPER
from envctl.summary import summary_lines

IMAGE_ID = "sha256:" + "b" * 64
MANIFEST = """\
name: busy
description: running work under test
device: {kind: cpu}
image: {ref: "lab/base:1", id: "%s"}
container:
  env: {LEARNING_RATE: "%s"}
entrypoints:
  train: {run: python train.py}
"""
RECORD = {"entrypoint": "train", "since": "2026-11-30T12:03:00Z", "log": "/ws/envctl-busy/logs/train-20261130T120300Z.log",
          "by": "ana@login1"}
TRAIN = ("train since 2026-11-30 12:03:00 UTC (pid 57, log /ws/envctl-busy/logs/train-20261130T120300Z.log, "
         "by ana@login1)")


@pytest.fixture
def world(tmp_path, clean_env):
    environ = {**clean_env, "ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_WORKSPACE": str(tmp_path / "ws")}
    (tmp_path / "root").mkdir()

    def plan(engine, rate="1e-4", force=False):
        path = tmp_path / "busy.yaml"
        path.write_text(MANIFEST % (IMAGE_ID, rate))
        loaded = load(str(path), environ=environ)
        observed = observe(LocalHost(str(tmp_path / "root")), loaded, engine, environ=environ)
        return build_plan(loaded, observed, Options(force=force), environ=environ)

    return plan


def up_with(engine, plan, status="running", marked=True):
    """The container `up` made for `plan`, running (`marked`: with its workspace's mark, as
    made since marks exist)."""
    labels = {LABEL_MANIFEST: plan.manifest, LABEL_HASH: plan.container.config_hash(), LABEL_IMAGE_ID: IMAGE_ID,
              LABEL_SPEC: json.dumps(plan.container.summary(), sort_keys=True, default=list)}
    if marked:
        labels[LABEL_WORKSPACE_MARK] = plan.workspace_mark
        LocalHost("/").make_workspace(plan.workspace, plan.workspace_mark)  # as that up made it
    else:
        os.makedirs(plan.workspace, exist_ok=True)
    engine.add_image(IMAGE_ID, "lab/base:1")
    return engine.add_container(plan.container.name, labels, status)


def exec_answer(exec_id, entrypoint, arguments, pid, running=True):
    return {"ID": exec_id, "Running": running, "ExitCode": None if running else 0,
            "ProcessConfig": {"tty": False, "entrypoint": entrypoint, "arguments": arguments, "privileged": False},
            "OpenStdin": False, "OpenStderr": True, "OpenStdout": True, "CanRemove": False, "ContainerID": "c", "DetachKeys": "",
            "Pid": pid}


def train_run(container):
    """`envctl exec train`, as execute.run starts it: the wrapper, its PID file, the record."""
    pid_file = "/var/lib/envctl/exec/" + "f" * 32
    container.execs["e1"] = exec_answer("e1", "sh", ["-c", WRAPPER, pid_file, json.dumps(RECORD), "/bin/sh", "-c",
                                                     "python train.py"], 9001)
    container.files[pid_file] = b"57\n"
    container.processes.append(["9001", "4200", "3600", "Ss", "python train.py"])
    container.processes.append(["9002", "9001", "3599", "Sl", "python -m torch.distributed.run worker"])


def test_recreating_a_container_where_an_entrypoint_runs_is_blocked(world):
    engine = FakeEngine()
    container = up_with(engine, world(engine))
    train_run(container)
    plan = world(engine, rate="3e-4")
    assert plan.container_action.action == "recreate" and plan.container_action.changes == ("env LEARNING_RATE",)
    assert plan.blockers == (f"recreating envctl-busy would kill running work: {TRAIN}; `--force` to do it anyway",)
    assert "blockers   1: up stops (see below)" in "\n".join(summary_lines(plan))
    assert json.loads(plan_json(plan))["ready"] is False


def test_force_accepts_exactly_the_runs_observed(world):
    engine = FakeEngine()
    container = up_with(engine, world(engine))
    train_run(container)
    plan = world(engine, rate="3e-4", force=True)
    assert plan.blockers == ()
    assert [r.describe() for r in plan.container_action.stops] == [TRAIN]
    assert f"kills (--force): {TRAIN}" in plan_text(plan)
    assert "recreate (env LEARNING_RATE), killing 1 running (--force)" in "\n".join(summary_lines(plan))
    assert json.loads(plan_json(plan))["container_action"]["stops"][0]["exec_id"] == "e1"


@pytest.mark.parametrize("status", ["running", "exited"])
def test_work_blocks_only_a_recreate(world, status):
    """Unchanged (work goes on) or stopped (nothing runs in a stopped container): no blocker."""
    engine = FakeEngine()
    container = up_with(engine, world(engine), status)
    train_run(container)
    kept = world(engine)
    assert kept.container_action.action == ("unchanged" if status == "running" else "start") and kept.blockers == ()
    if status == "exited":
        assert world(engine, rate="3e-4").blockers == ()


def test_docker_exec_by_hand_and_a_background_process_are_running_work(world):
    engine = FakeEngine()
    container = up_with(engine, world(engine))
    container.execs["e2"] = exec_answer("e2", "python", ["finetune.py", "--epochs", "3"], 9100)
    container.processes += [["9100", "4200", "120", "Ss", "python finetune.py --epochs 3"],
                            ["9200", "4242", "7200", "S", "python train.py"],  # nohup'd from a shell that exited
                            ["9300", "4242", "10", "Z", "[sh] <defunct>"]]  # a zombie: nothing to lose
    plan = world(engine, rate="3e-4")
    (blocker,) = plan.blockers
    assert "docker exec python finetune.py --epochs 3 since " in blocker and "(host pid 9100)" in blocker
    assert "process python train.py since " in blocker and "(host pid 9200)" in blocker
    assert "defunct" not in blocker


def test_what_is_not_running_work(world):
    """A finished exec (the engine still answers for it), another envctl reading /proc, and an
    exec started by envctl before runs had records (named by its command)."""
    engine = FakeEngine()
    container = up_with(engine, world(engine))
    container.execs["done"] = exec_answer("done", "sh", ["-c", "echo hi"], 0, running=False)
    container.execs["peek"] = exec_answer("peek", "sh", ["-c", PROC_SCRIPT], 9400)
    assert world(engine, rate="3e-4").blockers == ()
    old = 'mkdir -p "${0%/*}" && echo $$ > "$0" && exec "$@"'
    container.execs["old"] = exec_answer("old", "sh", ["-c", old, "/var/lib/envctl/exec/x", "/bin/sh", "-c", "python t.py"], 9500)
    (blocker,) = world(engine, rate="3e-4").blockers
    assert "would kill running work: docker exec /bin/sh -c python t.py " in blocker


def test_a_plan_made_without_an_engine_decides_nothing_about_runs(world):
    plan = world(None, rate="3e-4")
    assert plan.container_action.action == "unknown" and not any("running work" in b for b in plan.blockers)


def test_a_restart_for_an_artifact_placed_again_is_blocked_by_running_work(tmp_path, clean_env):
    """A restart kills what runs as a recreate does: blocked the same way, named 'restarting'."""
    environ = {**clean_env, "ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_WORKSPACE": str(tmp_path / "ws")}
    (tmp_path / "root").mkdir()
    path = tmp_path / "busy.yaml"
    path.write_text(MANIFEST % (IMAGE_ID, "1e-4") + "artifacts:\n  data: {source: /srv/data, target: /data}\n")
    engine = FakeEngine()

    def plan(force=False):
        loaded = load(str(path), environ=environ)
        observed = observe(LocalHost(str(tmp_path / "root")), loaded, engine, environ=environ)
        return build_plan(loaded, observed, Options(force=force), environ=environ)

    container = up_with(engine, plan())
    train_run(container)
    blocked = plan()
    assert blocked.container_action.action == "restart"
    assert [b for b in blocked.blockers if "running work" in b] == [
        f"restarting envctl-busy would kill running work: {TRAIN}; `--force` to do it anyway"]
    forced = plan(force=True)
    assert not [b for b in forced.blockers if "running work" in b]
    assert [r.name for r in forced.container_action.stops] == ["train"]


def test_a_workspace_gone_from_the_host_restarts_the_container_unless_work_runs_there(world):
    """The workspace deleted behind envctl's back: up makes it again, but the running
    container's /envctl is still the deleted directory. The plan says restart (a stopped
    container mounts it anew when started), and running work blocks it as any restart."""
    engine = FakeEngine()
    container = up_with(engine, world(engine))
    shutil.rmtree(world(engine).workspace)
    plan = world(engine)
    assert plan.container_action.action == "restart" and plan.blockers == ()
    assert plan.container_action.reason == (f"its workspace {plan.workspace} is gone from the host: made again, it "
                                            "would not be what the running container's /envctl shows (the deleted one)")
    train_run(container)
    blocked = world(engine)
    assert [b for b in blocked.blockers if "running work" in b] == [
        f"restarting envctl-busy would kill running work: {TRAIN}; `--force` to do it anyway"]
    container.status = "exited"
    assert world(engine).container_action.action == "start"


def test_a_workspace_made_again_or_replaced_restarts_the_container(world, tmp_path):
    """Deleted and made again (by hand, or by a command writing a log there), or a symlink to
    another directory in its place: the directory is there, but it is not the one the running
    container mounted; it lacks the container's mark. A restart mounts it, with the mark."""
    engine = FakeEngine()
    first = world(engine)
    container = up_with(engine, first)
    assert world(engine).container_action.action == "unchanged"
    workspace = Path(first.workspace)
    shutil.rmtree(workspace)
    (workspace / "logs").mkdir(parents=True)
    plan = world(engine)
    assert plan.container_action.action == "restart" and plan.blockers == ()
    assert plan.container_action.reason == (
        f"its workspace {workspace} is not the directory the running container mounted at /envctl (deleted and made "
        "again, or replaced: it lacks the container's mark .envctl-workspace)")
    assert plan.workspace_mark == first.workspace_mark  # what up writes there before the restart
    LocalHost("/").make_workspace(plan.workspace, plan.workspace_mark)
    assert world(engine).container_action.action == "unchanged"

    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.rmtree(workspace)
    workspace.symlink_to(other)
    assert world(engine).container_action.action == "restart"
    (other / ".envctl-workspace").write_text("not a mark\n")
    assert world(engine).container_action.action == "restart"
    train_run(container)
    assert [b for b in world(engine).blockers if "running work" in b] == [
        f"restarting envctl-busy would kill running work: {TRAIN}; `--force` to do it anyway"]


def test_a_container_made_before_marks_is_compared_by_its_workspace_being_there(world):
    """A container without the mark label (an older envctl made it) cannot say which directory
    it mounted: only a workspace gone from the host restarts it; up leaves a mark for the next
    container."""
    engine = FakeEngine()
    up_with(engine, world(engine), marked=False)
    plan = world(engine)
    assert plan.container_action.action == "unchanged"
    assert len(plan.workspace_mark) == 32
    LocalHost("/").make_workspace(plan.workspace, plan.workspace_mark)  # as up does
    again = world(engine)
    assert again.workspace_mark == plan.workspace_mark  # the container name's: a container made later gets it
    assert again.container_action.action == "unchanged"
    shutil.rmtree(plan.workspace)
    assert world(engine).container_action.action == "restart"


def test_a_file_in_place_of_the_workspace_blocks_up_before_it_acts(world):
    """up would act on the image and artifacts, then fail making the workspace: the plan says so
    first (a blocker), and removes nothing of what is there."""
    engine = FakeEngine()
    plan = world(engine)
    up_with(engine, plan)
    shutil.rmtree(plan.workspace)
    Path(plan.workspace).write_text("someone's notes\n")
    blocked = world(engine)
    assert f"workspace {plan.workspace} is not a directory on local: move it away (up makes the directory)" \
        in blocked.blockers, blocked.blockers
    assert Path(plan.workspace).read_text() == "someone's notes\n"
