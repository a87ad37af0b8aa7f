"""The quick paths of `up NAME` and `status` (envctl/quick_up.py, envctl/quick_status.py) on real
engines: they print exactly what the full path prints, import none of the heavy libraries, and
leave every changed world to the full path, which then answers as it always does.

Which path answered is read from `python -X importtime`'s report (every module imported): the
full path imports typer, the quick path does not. Never timings.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from support import IMAGE, SESSION

pytestmark = pytest.mark.both_engines  # image IDs and container lists differ between the two stores

REF = f"envctl-it/quick:{SESSION}"  # the manifests' image, tagged here (removed with the session's images)
HEAVY = ("typer", "pydantic", "docker", "requests")
SKIPPED = "setup      0 step(s) ran, 1 unchanged"  # what up says of a setup step already done


@dataclass(frozen=True)
class Said:
    code: int
    stdout: str
    stderr: str  # without -X importtime's lines
    modules: frozenset

    @property
    def quick(self) -> bool:
        return "typer" not in self.modules

    @property
    def output(self) -> tuple:
        return self.code, self.stdout, self.stderr


def envctl(env, *args, quick: bool = True, **extra) -> Said:
    environ = env.environ(**extra)
    environ.pop("PYTEST_CURRENT_TEST", None)  # pytest's: it names the phase (setup, call), which the record's key holds
    if not quick:
        environ["ENVCTL_NO_QUICK"] = "1"
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "envctl", *args], capture_output=True, text=True,
                          env=environ, timeout=120)
    lines = done.stderr.splitlines(keepends=True)
    modules = frozenset(line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")
                        and "self [us]" not in line)
    assert modules, done.stderr[-2000:]
    return Said(done.returncode, done.stdout, "".join(line for line in lines if not line.startswith("import time:")),
                modules)


def tag_image(engine, tarball: Path) -> str:
    """REF made to name the image `tarball` holds (IMAGE's tag is taken off again); its ID."""
    engine.images.load(tarball.read_bytes())
    image = engine.images.get(IMAGE)
    image.tag(REF)
    engine.images.remove(IMAGE)  # only the tag: REF keeps the image
    return image.id


@dataclass
class World:
    env: object
    profile: Path
    weights: Path
    full: Said  # the full path's answer for the environment already up

    def up(self, quick: bool = True) -> Said:
        return envctl(self.env, "up", str(self.env.manifest), quick=quick)

    def records(self) -> list[Path]:
        return sorted((self.env.base / "cache" / "state" / "quick-up").glob("*.json"))


@pytest.fixture
def world(make_env, engine, tarballs, tmp_path):
    """A cpu environment with a profile, an artifact and a setup step, brought up, and its
    no-op `up` recorded by a second (full) `up`."""
    tag_image(engine, tarballs.plain)
    env = make_env("cpu")
    profiles = tmp_path / "profiles"
    profiles.mkdir(exist_ok=True)
    profile = profiles / f"quick-{env.name[-8:]}.yaml"
    profile.write_text("description: a profile of the quick-path tests\ncontainer:\n  env: {FROM_PROFILE: \"1\"}\n")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 4096)
    env.write(f"""\
        extends: {profile.stem}
        device: {{kind: cpu}}
        image: {{ref: {REF}}}
        artifacts:
          weights: {{source: {weights}, target: /models/weights.bin}}
        container:
          env: {{A: "1"}}
        setup:
          - name: a step
            run: echo done > /tmp/step
        """)
    first = envctl(env, "up", str(env.manifest), quick=False)
    assert first.code == 0, first.stderr
    full = envctl(env, "up", str(env.manifest), quick=False)
    assert full.code == 0 and f"container  {env.container}: unchanged" in full.stderr, full.stderr
    yield World(env, profile, weights, full)
    # The tarballs' images as the session fixture leaves them: not on the engine under any name.
    # Left under REF (or untagged, while this test's container held them), a later test's `up`
    # of the same tarball would find the image and tag it where it expects a load.
    container = env.get()
    if container is not None:
        container.remove(force=True)
    for name in (REF, tarballs.image_id, tarballs.other_id):
        try:
            engine.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_up_already_up_is_answered_quickly_with_the_full_paths_bytes(world):
    assert len(world.records()) == 1
    quick = world.up()
    assert quick.quick and not [m for m in quick.modules if m.split(".")[0] in HEAVY]
    assert quick.output == world.full.output
    # And the full path, asked again, still says the same.
    assert world.up(quick=False).output == quick.output


def test_a_changed_environment_variable_is_another_key(world):
    said = envctl(world.env, "up", str(world.env.manifest), GREETING="hello")
    assert not said.quick and said.output == world.full.output


def _comment(path: Path) -> None:
    path.write_text(path.read_text() + "# one byte more\n")


def _cached_weights(world) -> Path:
    found = [p for p in (world.env.base / "cache" / "artifacts").rglob("*") if p.is_file() and p.stat().st_size == 4096]
    assert len(found) == 1, found
    return found[0]


# Changes after which the full path says the same as before (the plan is still a no-op): only the
# quick path's records must notice them.
SAME_ANSWER = {
    "manifest-byte": lambda w: _comment(w.env.manifest),
    "profile-byte": lambda w: _comment(w.profile),
    "lock-file-appears": lambda w: (w.env.manifest.parent / "manifest.lock").write_text("version: 1\nsources: {}\n"),
    "artifact-touched": lambda w: os.utime(_cached_weights(w), ns=(1, 1)),
    "record-truncated": lambda w: w.records()[0].write_bytes(w.records()[0].read_bytes()[:100]),
    "record-garbage": lambda w: w.records()[0].write_bytes(b"\x00\xffnot a record"),
    "record-of-another-format": lambda w: w.records()[0].write_text(w.records()[0].read_text().replace('"format": 1', '"format": 2')),
}


@pytest.mark.parametrize("change", list(SAME_ANSWER))
def test_a_change_the_plan_reads_takes_the_full_path(world, change):
    SAME_ANSWER[change](world)
    said = world.up()
    assert not said.quick
    assert said.output == world.full.output
    again = world.up()  # the full path recorded the no-op again: quick, the same answer
    assert again.quick and again.output == world.full.output


def _lock_file(world) -> Path:
    found = list((world.env.base / "cache" / "locks").glob(f"{world.env.container}.lock"))
    assert len(found) == 1, found
    return found[0]


def test_the_workspace_removed_is_made_again_by_the_full_path(world):
    """The full path makes it again and restarts the container, whose /envctl was the deleted
    directory (tests/integration/test_workspace_gone.py); the next `up` is quick again."""
    workspace = world.env.base / "workspaces" / world.env.container
    assert workspace.is_dir()
    shutil.rmtree(workspace)
    said = world.up()
    assert not said.quick and said.code == 0 and f"container  {world.env.container}: restarted" in said.stderr, said
    assert workspace.is_dir()
    world.up(quick=False)  # recorded again
    assert world.up().quick


def test_a_read_only_cache_is_the_full_paths_error(world):
    cache = world.env.base / "cache"
    made = subprocess.run(["mount", "--bind", str(cache), str(cache)], capture_output=True)
    # The suite runs as root (it drives Docker engines and network namespaces): a bind mount that
    # fails is a machine the test cannot vouch for, said as a failure, never a skip.
    assert made.returncode == 0, f"cannot bind-mount the cache read-only here: {made.stderr.decode().strip()}"
    try:
        assert subprocess.run(["mount", "-o", "remount,bind,ro", str(cache)], capture_output=True).returncode == 0
        said = world.up()
        assert not said.quick and said.code == 5 and "read-only" in said.stderr
    finally:
        subprocess.run(["umount", str(cache)], check=True)


def test_an_up_holding_the_environments_lock_is_waited_for(world):
    """A full `up` (or `down`) holding the environment's lock is changing it: the quick path
    does not answer past it; the full path waits for the lock, then answers."""
    with open(_lock_file(world), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        # Released a little later whatever happens: which path answered is what is asserted.
        threading.Timer(2.0, fcntl.flock, (held, fcntl.LOCK_UN)).start()
        said = world.up()
    assert not said.quick and said.output == world.full.output


def test_a_lock_file_with_the_wrong_version_is_the_full_paths_error(world):
    (world.env.manifest.parent / "manifest.lock").write_text("version: 99\nsources: {}\n")
    said = world.up()
    assert not said.quick and said.code == 3 and "lock" in said.stderr


def test_container_stopped_is_started_by_the_full_path(world, engine):
    engine.containers.get(world.env.container).stop(timeout=0)
    said = world.up()
    assert not said.quick and said.code == 0
    assert f"container  {world.env.container}: started" in said.stderr


def test_container_paused_is_unpaused_by_the_full_path(world, engine):
    """The engine refuses to start a paused container ("try unpause instead"): up unpauses it,
    and what ran in it is still there (the setup step is not run again)."""
    container = engine.containers.get(world.env.container)
    started = container.attrs["State"]["StartedAt"]
    container.pause()
    plan = envctl(world.env, "plan", str(world.env.manifest))
    assert plan.code == 0 and "it is paused" in plan.stdout + plan.stderr, plan
    said = world.up()
    assert not said.quick and said.code == 0, said.stderr
    assert f"container  {world.env.container}: started" in said.stderr
    assert SKIPPED in said.stderr and SKIPPED in world.full.stderr, said.stderr
    container.reload()
    assert container.status == "running" and container.attrs["State"]["StartedAt"] == started  # not restarted
    assert world.up().output == world.full.output


def test_container_restarted_takes_the_full_path(world, engine):
    engine.containers.get(world.env.container).restart(timeout=0)
    said = world.up()
    assert not said.quick and said.output == world.full.output


def test_container_removed_is_created_by_the_full_path(world, engine):
    engine.containers.get(world.env.container).remove(force=True)
    said = world.up()
    assert not said.quick and said.code == 0
    assert f"container  {world.env.container}: created" in said.stderr


def test_artifact_removed_is_fetched_again_by_the_full_path(world):
    _cached_weights(world).unlink()
    said = world.up()
    assert not said.quick and "artifact   weights: fetched" in said.stderr


def test_image_retagged_recreates_through_the_full_path(world, engine, tarballs):
    tag_image(engine, tarballs.other)
    said = world.up()
    assert not said.quick and said.code == 0
    assert f"container  {world.env.container}: recreated" in said.stderr


def test_a_tcp_docker_host_is_never_answered_quickly(world):
    said = envctl(world.env, "up", str(world.env.manifest), DOCKER_HOST="tcp://127.0.0.1:9")
    assert not said.quick and said.code == 5


def _top_works(engine, container: str) -> bool:
    """Whether the engine's host lists a container's processes (`docker top` runs its procps
    `ps`; the containerd-store test engine's host has none, and the full path then asks inside
    the container with an exec, which the quick path leaves to it)."""
    try:
        engine.api.top(container, ps_args="-o pid,ppid,etimes,stat,args")
        return True
    except docker.errors.APIError:
        return False


def test_status_is_answered_quickly_with_the_full_paths_bytes(world, engine):
    quickly = _top_works(engine, world.env.container)
    # The engines are shared with other tests and programs: asked again (10 s at most) while
    # another container runs work, which sends status to the full path, or one came or went
    # between the two answers.
    for _ in range(10):
        quick, full = envctl(world.env, "status"), envctl(world.env, "status", quick=False)
        if quick.quick == quickly and quick.output == full.output:
            break
        time.sleep(1)
    assert quick.output == full.output and quick.code == 0
    assert world.env.container in quick.stdout
    if quickly:
        assert quick.quick, f"status took the full path each time: work runs on this engine?\n{quick.stdout}"
        assert not [m for m in quick.modules if m.split(".")[0] in HEAVY]
    else:
        assert not quick.quick


def test_status_of_a_container_running_work_takes_the_full_path(world, engine):
    container = engine.containers.get(world.env.container)
    container.exec_run(["sleep", "60"], detach=True)
    try:
        said = envctl(world.env, "status")  # the full path (two of its runs differ in their "since" by a second)
        assert not said.quick and said.code == 0
        assert "  running docker exec sleep 60" in said.stdout
    finally:
        container.exec_run(["pkill", "sleep"])


def test_status_of_a_process_left_in_the_background_takes_the_full_path(world, engine):
    container = engine.containers.get(world.env.container)
    container.exec_run(["sh", "-c", "sleep 61 >/dev/null 2>&1 &"])
    try:
        said = envctl(world.env, "status")
        assert not said.quick and said.code == 0
        assert "  running process sleep 61" in said.stdout
    finally:
        container.exec_run(["pkill", "sleep"])


def test_an_image_tarball_touched_takes_the_full_path(make_env, engine, tarballs, tmp_path):
    tarball = tmp_path / "image.tar"
    tarball.write_bytes(tarballs.plain.read_bytes())
    env = make_env("cpu")
    env.write(f"""\
        device: {{kind: cpu}}
        image: {{ref: {IMAGE}, tarball: {{source: {tarball}}}}}
        container:
          env_file: run.env
        """)
    assert envctl(env, "up", str(env.manifest), quick=False).code == 0
    full = envctl(env, "up", str(env.manifest), quick=False)
    assert full.code == 0 and f"container  {env.container}: unchanged" in full.stderr, full.stderr
    # The full path of an `up` already up reads no tarball (its identity is remembered), so it
    # draws no bar and loads no rich (~0.1 s).
    assert not [m for m in full.modules if m.split(".")[0] == "rich"]
    quick = envctl(env, "up", str(env.manifest))
    assert quick.quick and quick.output == full.output
    os.utime(tarball, ns=(1, 1))  # its identity is remembered by size and mtime: read again
    said = envctl(env, "up", str(env.manifest))
    assert not said.quick and said.output == full.output
    assert envctl(env, "up", str(env.manifest)).quick
    (tmp_path / "run.env").write_text("A=1\n")  # the optional env file appears
    said = envctl(env, "up", str(env.manifest))
    assert not said.quick and said.code == 0


def test_an_image_retagged_after_the_plan_is_not_recorded(world, engine, tarballs, monkeypatch):
    """The record's engine facts are asked after the apply: an image ref re-tagged since this
    plan observed it is not what this plan found present (the quick path would replay
    "unchanged" where the full path recreates the container on the new image)."""
    from envctl import apply
    from envctl.hosts.local import LocalHost
    from envctl.manifest.loader import load
    from envctl.plan import Options
    from envctl.planning import plan_on
    from envctl.quick_up_record import Recording

    for name in [k for k in os.environ if k.startswith("ENVCTL_")]:
        monkeypatch.delenv(name)
    for name, value in world.env.environ().items():
        monkeypatch.setenv(name, value)
    host = LocalHost.from_environ()
    loaded = load(str(world.env.manifest))
    plan = plan_on(host, loaded, Options(), host.engine())
    report = apply.up(host, loaded, plan, lambda _line: None)
    recording = Recording(["up", str(world.env.manifest)])
    recording.note(host, loaded, plan, report)
    assert recording.facts is not None  # the container this plan saw: recorded
    tag_image(engine, tarballs.other)  # meanwhile, the ref names another image
    recording.note(host, loaded, plan, report)
    assert recording.facts is None


@pytest.mark.parametrize("change", ["touched", "removed"])
def test_an_artifact_changed_after_the_plan_is_not_recorded(world, monkeypatch, change):
    """Stat fingerprints are taken after the apply: an artifact touched or removed since the
    plan counted it as cached is not recorded as that no-op's."""
    from envctl import apply
    from envctl.hosts.local import LocalHost
    from envctl.manifest.loader import load
    from envctl.plan import Options
    from envctl.planning import plan_on
    from envctl.quick_up_record import Recording

    for name in [k for k in os.environ if k.startswith("ENVCTL_")]:
        monkeypatch.delenv(name)
    for name, value in world.env.environ().items():
        monkeypatch.setenv(name, value)
    recording = Recording(["up", str(world.env.manifest)])  # as `up` starts
    host = LocalHost.from_environ()
    loaded = load(str(world.env.manifest))
    plan = plan_on(host, loaded, Options(), host.engine())
    report = apply.up(host, loaded, plan, lambda _line: None)
    recording.note(host, loaded, plan, report)
    assert recording.facts is not None  # nothing changed: recorded
    weights = _cached_weights(world)
    os.utime(weights, ns=(1, 1)) if change == "touched" else weights.unlink()
    recording.note(host, loaded, plan, report)
    assert recording.facts is None


def _environ(env, **extra) -> dict:
    """The environment envctl() gives the command (its record's key holds every variable)."""
    environ = env.environ(**extra)
    environ.pop("PYTEST_CURRENT_TEST", None)
    return environ


def test_a_record_under_another_commands_name_is_not_read(world):
    """A cache shared by a lab's users may lie in a group-writable directory: another user cannot
    write this user's record, but can rename it to the name of another command's."""
    from envctl.quick_up import record_key

    args = ["up", str(world.env.manifest)]
    [record] = world.records()
    assert record.stem == record_key(args, _environ(world.env))  # the key as the command computes it
    other = record_key(args, _environ(world.env, GREETING="hello"))
    record.rename(record.with_name(f"{other}.json"))
    said = envctl(world.env, *args, GREETING="hello")
    assert not said.quick and said.output == world.full.output


def test_a_fifo_left_as_the_record_is_no_record(world):
    """A shared cache's other user may leave a FIFO under the record's name: opened as a file it
    would block until someone wrote to it. The full path answers instead (and writes the record
    again), with nothing waited for."""
    [record] = world.records()
    record.unlink()
    os.mkfifo(record, 0o600)
    said = world.up()  # a wait here would end in envctl()'s timeout
    assert not said.quick and said.output == world.full.output
    assert record.is_file() and world.up().quick


def test_a_manifest_reading_a_variable_the_key_leaves_out_is_never_recorded(world):
    """The key leaves out what a shell changes by itself (quick_up.SHELL_ONLY); a manifest that
    reads one of them resolves otherwise in the next login."""
    world.env.manifest.write_text(world.env.manifest.read_text().replace('env: {A: "1"}', 'env: {A: "${SHLVL:-1}"}'))
    for _ in range(3):
        said = world.up()
        assert not said.quick and said.code == 0, said
    assert world.records() == []
