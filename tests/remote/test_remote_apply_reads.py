"""`up` of an environment already up on an SSH host asks its checks' engine reads (the image
ref, the container's listing, the setup markers) together while the artifacts' check runs
(envctl/apply_reads.py, issue 14). Each change of the world between the plan and apply is still
caught, with the same message, in step order; a read that fails raises what it raises when
asked in place; a listing is not taken while another `up` holds the environment's lock."""

from __future__ import annotations

import fcntl
import re
import threading
from contextlib import contextmanager

import docker
import pytest
import requests

from testimages import save_image

HOST = "lab3"
BODY = """\
device: {{kind: cpu}}
image:
  ref: {ref}
  tarball: {{source: "{tarball}"}}
artifacts:
  weights: {{source: "{weights}", target: /models/weights.bin}}
setup:
  - name: read the weights
    run: wc -c /models/weights.bin > /tmp/size.txt
"""
HINT = "run `envctl plan` again to see what up would do now"


@pytest.fixture
def already_up(world, lab, tmp_path, monkeypatch):
    """(host, loaded, plan()): an environment brought up on lab3 by `envctl up`; `plan()` plans
    it again as `up` does (everything cached, present, unchanged, the step skipped)."""
    from envctl.cli_remote import RemoteOptions, single_target
    from envctl.manifest.loader import load
    from envctl.plan import Options
    from envctl.planning import plan_on

    ref = f"envctl-it/apply-reads:{world.name}"  # this test's own: it is re-tagged by one
    tarball, weights = tmp_path / "image.tar", tmp_path / "weights.bin"
    save_image(docker.from_env(), {"etc/apply-reads": b"1\n"}, tarball, ref)
    weights.write_bytes(b"w" * 4096)
    manifest = world.write(BODY.format(ref=ref, tarball=tarball, weights=weights))
    world.cleanups.append(lambda: lab.docker(HOST, "rmi", "-f", ref))
    done = world.run("up", str(manifest), "--host", HOST)
    assert done.returncode == 0, done.stderr
    for key, value in world.environ().items():
        monkeypatch.setenv(key, value)
    host = single_target(RemoteOptions((HOST,), None, None, None))
    loaded = load(str(manifest))

    def plan():
        the_plan = plan_on(host, loaded, Options(), host.engine())
        assert [a.action for a in the_plan.artifacts] == ["cached"]
        assert (the_plan.image.action, the_plan.container_action.action) == ("present", "unchanged")
        assert [s.action for s in the_plan.setup] == ["skip"] and the_plan.world.markers
        return the_plan

    return host, loaded, plan


def _up(host, loaded, the_plan) -> tuple[list[str], BaseException | None]:
    """(what up said, what it raised) of apply.up."""
    from envctl import apply

    said = []
    try:
        apply.up(host, loaded, the_plan, said.append)
    except Exception as exc:  # noqa: BLE001  (compared by the caller)
        return said, exc
    return said, None


def _no_read_left() -> None:
    assert not [t.name for t in threading.enumerate() if t.name.startswith("envctl-read-")]


def _lines(world, ref: str) -> list[str]:
    return [f"artifact   weights: present on {HOST}", f"image      {ref}: present",
            f"container  {world.container}: unchanged"]


# -- the reads go out together ---------------------------------------------------------------

def test_the_engine_reads_are_answered_while_the_artifacts_check_runs(world, already_up, monkeypatch):
    """The artifacts' check (an ssh session) waits here until the engine has answered the
    image's look-up, the container's listing and the markers' archive: it does so only when
    they were asked beside it. (Sequential, they come after it: the wait ends unanswered.)"""
    host, loaded, plan = already_up
    the_plan = plan()
    wanted = {"image": rf"/v[\d.]+/images/{re.escape(the_plan.image.ref)}/json",
              "listing": r"/v[\d.]+/containers/json\?.*", "markers": r"/v[\d.]+/containers/[0-9a-f]{64}/archive\?.*"}
    answered, all_answered = set(), threading.Event()

    def seen(response, *args, **kwargs):
        for name, pattern in wanted.items():
            if re.fullmatch(pattern, response.request.path_url):
                answered.add(name)
        if answered == set(wanted):
            all_answered.set()

    host.engine().raw.api.hooks["response"].append(seen)
    record, waited = host.artifact_record, []

    def artifact_record(cache_path, fresh=False):
        if fresh:  # apply's check before it acts
            waited.append(all_answered.wait(30))
        return record(cache_path, fresh=fresh)

    monkeypatch.setattr(host, "artifact_record", artifact_record)
    said, raised = _up(host, loaded, the_plan)
    assert raised is None and waited == [True], (raised, waited, answered)
    assert said[:3] == _lines(world, the_plan.image.ref) and said[3] == "setup      0 step(s) ran, 1 unchanged"
    _no_read_left()


# -- each change is caught with its message, in step order -------------------------------------

def _empty_cache(world, lab, the_plan):
    lab.run_in(HOST, "rm", "-rf", f"{world.data_dir()}/cache/artifacts")


def _retag_image(world, lab, the_plan):
    assert lab.docker(HOST, "commit", world.container, the_plan.image.ref).returncode == 0


def _remove_container(world, lab, the_plan):
    assert lab.docker(HOST, "rm", "-f", world.container).returncode == 0


def _change_markers(world, lab, the_plan):
    from envctl.markers import MARKER_DIR

    assert lab.docker(HOST, "exec", world.container, "touch", f"{MARKER_DIR}/another").returncode == 0


def _now_id(lab, ref: str) -> str:
    return lab.docker(HOST, "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def _expected(change, world, lab, the_plan) -> tuple[str, list[str]]:
    """(the message, the lines said before it) for the first change in step order."""
    ref, seen = the_plan.image.ref, the_plan.world
    if change is _empty_cache:
        return f"artifact(s) weights left the cache of {HOST} since the plan was made", []
    if change is _retag_image:
        return (f"image {ref} changed since the plan was made: it was {seen.image_id}, it is {_now_id(lab, ref)}",
                _lines(world, ref)[:1])
    if change is _remove_container:
        return (f"container {world.container} changed since the plan was made: it was {seen.container_status}, "
                f"id {seen.container_id[:12]}, config {seen.container_hash[:12]}, it is absent", _lines(world, ref)[:2])
    return (f"the setup markers in {world.container} changed since the plan was made (another up ran setup meanwhile)",
            _lines(world, ref))


@pytest.mark.parametrize("changes", [
    (_empty_cache,), (_retag_image,), (_remove_container,), (_change_markers,),
    (_empty_cache, _retag_image), (_retag_image, _remove_container), (_remove_container, _change_markers),
    (_empty_cache, _retag_image, _remove_container),
], ids=lambda changes: "+".join(c.__name__.strip("_") for c in changes))
def test_each_change_between_plan_and_apply_is_caught_with_its_message_in_step_order(world, lab, already_up, changes):
    from envctl.errors import WorldChanged

    host, loaded, plan = already_up
    the_plan = plan()
    # Made in an order each can be (the markers and the image's new content come from the
    # container, which is removed last); caught in step order all the same.
    for change in sorted(changes, key=[_change_markers, _retag_image, _empty_cache, _remove_container].index):
        change(world, lab, the_plan)
    message, before = _expected(changes[0], world, lab, the_plan)
    said, raised = _up(host, loaded, the_plan)
    assert isinstance(raised, WorldChanged), raised
    assert (raised.message, raised.hint) == (message, HINT)
    assert said == before
    _no_read_left()
    if _remove_container not in changes:  # nothing was acted on: the container is the plan's still
        assert world.containers(HOST) == [f"{world.container} running"]


# -- a read that fails raises what it raises in place ----------------------------------------

@contextmanager
def _in_place(host, plan):
    """apply_reads.started that starts nothing: every read asked by its step, as before."""
    from envctl.apply_reads import Reads

    yield Reads()


def _failing(pattern: str):
    """A response hook that turns the engine's answer to a request matching `pattern` into a
    500 with a message of its own."""

    def hook(response, *args, **kwargs):
        if not re.fullmatch(pattern, response.request.path_url):
            return None
        response.close()
        failed = requests.models.Response()
        failed.status_code, failed.reason, failed.url, failed.request = 500, "Internal Server Error", response.url, \
            response.request
        failed.headers["Content-Type"] = "application/json"
        failed._content, failed.encoding = b'{"message": "simulated engine failure"}', "utf-8"
        return failed

    return hook


@pytest.mark.parametrize("failing", {
    "image": r"/v[\d.]+/images/[^/]+/[^/]+/json",
    "listing": r"/v[\d.]+/containers/json\?.*",
    "markers": r"/v[\d.]+/containers/[0-9a-f]{64}/(archive|json|exec)\b.*",
}.items(), ids=lambda item: item[0])
def test_a_failed_early_read_raises_what_the_same_read_raises_in_place(world, already_up, monkeypatch, failing):
    from envctl import apply_reads
    from envctl.errors import EnvctlError

    host, loaded, plan = already_up
    hooks = host.engine().raw.api.hooks["response"]
    outcomes = []
    for started in (apply_reads.started, _in_place):
        the_plan = plan()
        monkeypatch.setattr(apply_reads, "started", started)
        hooks.append(_failing(failing[1]))
        try:
            said, raised = _up(host, loaded, the_plan)
        finally:
            hooks.pop()
        _no_read_left()
        assert isinstance(raised, EnvctlError), repr(raised)  # an error envctl explains, no traceback
        outcomes.append((type(raised), raised.message, raised.hint, said))
    assert outcomes[0] == outcomes[1]
    assert "simulated engine failure" in outcomes[0][1]


# -- the container's listing and another `up` ------------------------------------------------

def test_a_listing_is_not_taken_early_while_another_up_holds_the_environments_lock(world, lab, already_up):
    """Another `up` of the environment holds its lock (here: this test) and removes the container
    while this one makes its first steps: the listing is taken under the lock once it is free,
    as before, and sees the container gone (taken early, it would have seen it still there)."""
    from pathlib import Path

    from envctl.errors import WorldChanged

    host, loaded, plan = already_up
    the_plan = plan()
    lock = Path(host.lock_dir) / f"{world.container}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    said = []

    def echo(line: str) -> None:
        said.append(line)
        if line.startswith("image "):  # the other `up` acts and lets go before this one's container step
            _remove_container(world, lab, the_plan)
            handle.close()

    from envctl import apply

    try:
        with pytest.raises(WorldChanged) as raised:
            apply.up(host, loaded, the_plan, echo)
    finally:
        handle.close()
    assert raised.value.message.startswith(f"container {world.container} changed since the plan was made"), raised.value
    assert raised.value.message.endswith("it is absent")
    _no_read_left()


def test_markers_read_early_while_up_makes_the_workspace_again_are_asked_again(world, already_up, monkeypatch):
    """The workspace removed from the host once the plan was made (one made after says restart,
    and no early read goes out: tests/remote/test_remote_workspace_gone.py): `up` makes it
    again beside the image step while its early read of the markers runs. Sent while the mount's source is missing, the archive request
    answers 404; the stat of the root, sent once it is made, answers: read_setup_state takes that
    for a container with no state directory, and apply said that another `up` ran setup (exit 5,
    about one run in three through the plain `up`). Made certain here: the workspace is made
    between those two requests, and apply's own mkdir waits for it. The markers are asked again
    in place: the step is skipped and `up` succeeds."""
    import os
    import shutil

    from envctl import observe_engine

    host, loaded, plan = already_up
    workspace = world.remote(HOST, f"{world.data_dir()}/workspaces/{world.container}")
    assert workspace.is_dir()
    the_plan = plan()
    shutil.rmtree(workspace)
    made = threading.Event()
    original_root_answers, original_make = observe_engine._root_answers, host.make_workspace

    def made_between(client, container_id):
        os.makedirs(workspace, exist_ok=True)
        made.set()
        return original_root_answers(client, container_id)

    def make_once_made(path, mark):
        made.wait(timeout=30)
        return original_make(path, mark)

    monkeypatch.setattr(observe_engine, "_root_answers", made_between)
    monkeypatch.setattr(host, "make_workspace", make_once_made)
    said, raised = _up(host, loaded, the_plan)
    assert made.is_set()  # the early read met the missing mount, then the made one
    assert raised is None, raised
    assert said[-1] == "setup      0 step(s) ran, 1 unchanged", said
    _no_read_left()
