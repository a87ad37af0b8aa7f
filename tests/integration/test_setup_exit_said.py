"""A setup step's exit code is read from its wrapper's last line (envctl/markers.py EXIT_WORD),
not asked of the engine afterwards (an exec inspection: one round trip to an SSH host per step,
issue 14); where the step's own output comes after that line (its stderr, which the engine copies
apart from stdout), the engine is asked, as before. Run on a real engine, requests counted."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from envctl.plan import RunSetup
from envctl.setup_steps import SetupFailed, _exit_said, run_planned
from support import count_docker_py_requests
from testimages import _rootfs_tar, remove_images


@pytest.fixture
def container(engine):
    ref = f"envctl-it/exit-said:{uuid.uuid4().hex[:8]}"
    engine.api.import_image_from_data(_rootfs_tar(), repository=ref.split(":")[0], tag=ref.split(":")[1])
    made = engine.containers.run(ref, ["sleep", "600"], detach=True, name=f"it-exit-said-{uuid.uuid4().hex[:8]}")
    yield made
    made.remove(force=True)
    remove_images(engine, [ref])


def _step(index: int, script: str) -> RunSetup:
    return RunSetup(index, f"step {index}", ("/bin/sh", "-c", script), None, {}, (),
                    hashlib.sha256(f"{index}{script}{uuid.uuid4()}".encode()).hexdigest(), "run")


def _inspections(calls: list[str], steps: int) -> int:
    """How many of the first `steps` execs (the steps', run in order) were inspected; a failed
    step's `.failed` marker is written by an exec of its own after it (exec_quiet)."""
    started = [call.split("/")[2] for call in calls if call.startswith("POST /exec/") and call.endswith("/start")]
    return sum(1 for exec_id in started[:steps] if f"GET /exec/{exec_id}/json" in calls)


def test_steps_that_succeed_are_not_inspected_and_keep_their_output(engine, container, monkeypatch):
    said = []
    calls = count_docker_py_requests(monkeypatch)
    steps = (_step(0, "echo one; echo two"), _step(1, "printf 'no newline at the end'"), _step(2, "true"))
    outcomes = run_planned(engine, container.id, steps, said.append)
    assert [o.action for o in outcomes] == ["ran", "ran", "ran"]
    assert _inspections(calls, 3) == 0, calls
    assert said == ["setup [1/3] step 0", "  | one", "  | two", "setup [2/3] step 1", "  | no newline at the end",
                    "setup [3/3] step 2"]
    assert container.exec_run(["sh", "-c", "ls /var/lib/envctl/setup | wc -l"]).output.decode().strip() == "3"


def test_a_failing_step_is_said_with_its_own_exit_code(engine, container, monkeypatch):
    calls = count_docker_py_requests(monkeypatch)
    with pytest.raises(SetupFailed, match="failed with exit code 3; last lines:\nalmost") as failed:
        run_planned(engine, container.id, (_step(0, "echo almost; exit 3"),), lambda _: None)
    assert "envctl-setup-exit" not in failed.value.message
    assert _inspections(calls, 1) == 0, calls


def test_output_after_the_wrappers_word_is_shown_and_the_engine_asked(engine, container, monkeypatch):
    """A step that leaves a child writing to stderr after it exits: its bytes may follow the
    wrapper's word; the exit code is then the engine's."""
    said = []
    calls = count_docker_py_requests(monkeypatch)
    script = "(sleep 0.3; printf late >&2) & exit 4"
    with pytest.raises(SetupFailed, match="failed with exit code 4"):
        run_planned(engine, container.id, (_step(0, script),), said.append)
    assert "  | late" in said and not [line for line in said if "envctl-setup-exit" in line], said
    assert _inspections(calls, 1) == 1, calls


@pytest.mark.parametrize("line, expected", [
    ("\x1eenvctl-setup-exit 0", (None, 0)),
    ("tail\x1eenvctl-setup-exit 12", ("tail", 12)),
    ("plain output", ("plain output", None)),
    ("\x1eenvctl-setup-exit ***", ("\x1eenvctl-setup-exit ***", None)),
    ("envctl-setup-exit 0", ("envctl-setup-exit 0", None)),  # without the separator: the step's own text
    ("\x1eenvctl-setup-exit \u00b2", ("\x1eenvctl-setup-exit \u00b2", None)),  # a digit to str.isdigit, not to int
])
def test_the_wrappers_word_is_read_only_where_it_is_whole(line, expected):
    assert _exit_said(line) == expected


@pytest.mark.parametrize("rest, expected", [
    ("\x1eenvctl-setup-exit 0", None),  # whole, but for its newline
    ("\x1eenvctl-setup-ex", None),  # cut short inside the word
    ("\x1eenvctl-setup-exit ", None),
    ("tail\x1eenvctl-setup-exit 1", "tail"),
    ("tail\x1eenvc", "tail"),
    ("tail", "tail"),
    ("a\x1eb", "a\x1eb"),  # a record separator of the step's own
])
def test_a_word_cut_short_at_the_streams_end_is_not_shown(rest, expected):
    from envctl.setup_steps import _without_cut_word

    assert _without_cut_word(rest) == expected
