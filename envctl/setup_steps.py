"""Setup steps inside the container, each run once.

A step's marker lives in the container's own filesystem, named by the step's hash (which
covers the step, every step before it, the artifacts it uses and the image). An unchanged step
is skipped; a changed one re-runs, and so does every step after it; a recreated container has
no markers and runs them all. A failed step leaves no marker, so the next `up` resumes there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from envctl.errors import EnvctlError, EXIT_HOST_NOT_READY, WorldChanged
from envctl.masking import mask
from envctl.markers import CLAIM_DIR, CLAIM_DONE, CLAIM_EXIT as _CLAIM_EXIT, CLAIM_HELD, CLAIM_WRAPPER, EXIT_WORD, \
    MARKER_DIR, MARKER_EXIT, MARKER_UNWRITTEN, failed_path, marker_name, marker_path
from envctl.plan import RunSetup

TAIL_LINES = 20
# A step runs under a claim in the container, so that two `up`s of one environment (from this
# machine or any other with this engine) never run a step at once or run it twice: the planned
# "run" was decided before the other `up` ran it. The claim file is created with O_EXCL (sh's
# noclobber, `set -C`) and holds the wrapper's PID; a claim whose process is gone (an `up`
# killed mid-step, a restart) is stale and taken over. The wrapper and its arguments: envctl/markers.py.
# Only sh, mkdir and rm are assumed (the marker writes need mkdir already), and printf, a builtin
# of dash, busybox sh and bash (without it, up asks the engine for the exit code: _exit_said).
# The wrapper writes the marker itself when the step succeeds, before it lets go of the claim: a
# step whose `up` lost its connection (an SSH host gone away) runs on in the
# container, and when it succeeds the next `up` skips it rather than running it a second time.


class SetupFailed(EnvctlError):
    exit_code = EXIT_HOST_NOT_READY


@dataclass(frozen=True)
class StepOutcome:
    name: str
    action: str  # skipped | ran


def _marker(step: RunSetup) -> str:
    return marker_path(step.index, step.step_hash)


def _step_exec(step: RunSetup, passed: Mapping[str, str]) -> tuple[list[str], str | None, dict[str, str]]:
    """(command, working directory, environment) of the exec a step runs in: the claim wrapper
    with the step's command, its `env` winning over the passed variables."""
    claim = f"{CLAIM_DIR}/{marker_name(step.index, step.step_hash)}"
    return (["sh", "-c", CLAIM_WRAPPER, claim, _marker(step), step.name, *step.argv], step.workdir,
            {**passed, **step.env})


def exec_body(api, container_id: str, step: RunSetup, passed: Mapping[str, str] | None = None) -> dict | None:
    """The body docker-py's exec_create sends for the exec `run_planned` makes for `step` (the
    keys of docker/api/exec_api.py exec_create, None values left out as its _post_json leaves
    them, the environment as its format_environment writes it, detachKeys from the client's
    config): for making that exec beside another request (lifecycle._start_then_exec). None
    where docker-py would refuse it (an environment before API 1.25, a working directory before
    1.35): run_planned's own exec_create then says so."""
    from docker.utils import version_lt
    from docker.utils.utils import format_environment

    if version_lt(api._version, "1.25"):
        return None
    cmd, workdir, environment = _step_exec(step, dict(passed or {}))
    data = {"Container": container_id, "User": "", "Privileged": False, "Tty": False, "AttachStdin": False,
            "AttachStdout": True, "AttachStderr": True, "Cmd": cmd, "Env": format_environment(environment)}
    if workdir is not None:
        if version_lt(api._version, "1.35"):
            return None
        data["WorkingDir"] = workdir
    if "detachKeys" in api._general_configs:
        data["detachKeys"] = api._general_configs["detachKeys"]
    return {key: value for key, value in data.items() if value is not None}


def _name(client, container_id: str) -> str:
    try:
        return client.api.inspect_container(container_id)["Name"].lstrip("/")
    except Exception:  # only for a message: the ID names it too
        return container_id[:12]


def exec_quiet(client, container_id: str, argv: list[str]) -> int:
    exec_id = client.api.exec_create(container_id, argv, stdout=True, stderr=True)["Id"]
    client.api.exec_start(exec_id)
    return client.api.exec_inspect(exec_id)["ExitCode"]


def _exit_said(line: str) -> tuple[str | None, int | None]:
    """(the line without the wrapper's EXIT_WORD and code at its end, or None when they were the
    whole line; the code, or None when the line does not end with them). A step's last line
    without a newline ends with the word."""
    text, found, code = line.rpartition(EXIT_WORD + " ")
    if not found or not (code.isascii() and code.isdigit()):
        return line, None
    return (text or None), int(code)


def _without_cut_word(text: str) -> str | None:
    """`text` (what followed the stream's last newline) without the wrapper's word at its end,
    whole or cut short anywhere (the stream broke off while the wrapper wrote it); None when
    nothing else is left."""
    at = text.rfind(EXIT_WORD[0])
    if at < 0:
        return text
    rest, word = text[at:], EXIT_WORD + " "
    code = rest[len(word):]
    if word.startswith(rest) or (rest.startswith(word) and (not code or (code.isascii() and code.isdigit()))):
        return text[:at] or None
    return text


def present_markers(client, container_id: str) -> set[str]:
    """The markers in the container, read at once: each exec is a few Engine API calls, and a
    remote engine is a round trip away. Only the image's sh is used (builtins, no ls)."""
    script = f'for f in {MARKER_DIR}/*; do [ -e "$f" ] && printf "%s\\n" "$f"; done; true'
    exec_id = client.api.exec_create(container_id, ["sh", "-c", script], stdout=True, stderr=False)["Id"]
    return set(client.api.exec_start(exec_id).decode("utf-8", errors="replace").split("\n")) - {""}


def run_setup(client, container_id: str, steps: tuple[RunSetup, ...], echo: Callable[[str], None],
              passed: Mapping[str, str] | None = None, masked: Iterable[str] | None = None) -> list[StepOutcome]:
    """Run the steps whose marker is missing (used by `envctl build` on a fresh container).
    `passed`, `masked`: as for run_planned."""
    # Markers are named by chained hashes, so which exist before the first step runs decides
    # every skip: a step after one that re-runs has a new hash, hence no marker.
    present = present_markers(client, container_id) if steps else set()
    return run_planned(client, container_id, steps, echo, lambda step: _marker(step) not in present, passed, masked)


def run_planned(client, container_id: str, steps: tuple[RunSetup, ...], echo: Callable[[str], None],
                wanted: Callable[[RunSetup], bool] = lambda step: step.action == "run",
                passed: Mapping[str, str] | None = None, masked: Iterable[str] | None = None,
                made: tuple[int, str] | None = None) -> list[StepOutcome]:
    """Run exactly the steps `wanted` picks (by default those the plan says run), in order,
    each leaving its marker; the others are reported skipped. Raises SetupFailed at the first
    step that exits non-zero.

    `passed`: the run-time-only variables (envctl/runtime_env.py RuntimeEnv.values), given to
    each step's process with its own `env` (which wins on a name in both). They travel in the
    Engine API's exec-create body, never on a command line, and the engine keeps no copy in the
    container's configuration. `masked`: the values masked in the step output echoed and
    reported (default: every passed value). `made`: (a step's index, the ID of its exec, made
    already from exec_body with the same `passed`: lifecycle._start_then_exec), started instead
    of one made here."""
    passed = dict(passed or {})
    secrets = [v for v in (passed.values() if masked is None else masked) if v]
    outcomes = []
    for step in steps:
        marker = _marker(step)
        if not wanted(step):
            outcomes.append(StepOutcome(step.name, "skipped"))
            continue
        echo(f"setup [{step.index + 1}/{len(steps)}] {step.name}")
        if made is not None and made[0] == step.index:
            exec_id = made[1]
        else:
            cmd, workdir, environment = _step_exec(step, passed)
            exec_id = client.api.exec_create(container_id, cmd, stdout=True, stderr=True, workdir=workdir,
                                             environment=environment)["Id"]
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        pending = b""
        first: str | None = None  # the wrapper's refusal, when it refuses, is the only line
        said: int | None = None  # the exit code the wrapper said, while its word is the last line
        for chunk in client.api.exec_start(exec_id, stream=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text, said = _exit_said(line.decode("utf-8", errors="replace"))  # before masking: a secret may be "0"
                if text is None:  # the word alone
                    continue
                text = mask(text, secrets)
                if first is None:
                    first = text
                    if text.startswith((CLAIM_HELD, CLAIM_DONE)):
                        continue
                tail.append(text)
                if not text.startswith(MARKER_UNWRITTEN):  # the wrapper's word to us, not the step's output
                    echo(f"  | {text}")
        if pending:
            said = None  # output after the word (the step's stderr, copied after it), or the word cut short: asked below
            text = _without_cut_word(pending.decode("utf-8", errors="replace"))
            if text is not None:
                tail.append(mask(text, secrets))
                echo(f"  | {tail[-1]}")
        code = said if said is not None else client.api.exec_inspect(exec_id)["ExitCode"]
        if code == _CLAIM_EXIT and first is not None and first.startswith((CLAIM_HELD, CLAIM_DONE)):
            what = ("another `up` is running it now (pid " + first[len(CLAIM_HELD):].strip() + " in the container)"
                    if first.startswith(CLAIM_HELD) else "another `up` ran it since the plan was made")
            raise WorldChanged(f"setup step {step.index + 1} '{step.name}' in {_name(client, container_id)}: {what}; nothing more was run",
                               hint="let the other `up` finish, then run `envctl plan` again to see what up would do now")
        if code == MARKER_EXIT and tail and MARKER_UNWRITTEN in tail[-1]:
            raise SetupFailed(f"setup step '{step.name}' ran, but its marker {marker} could not be written in the container")
        if code != 0:
            # Remembered, so that the next plan says "failed last time" (best effort: the
            # step's own failure is what is reported).
            exec_quiet(client, container_id, ["sh", "-c", f'mkdir -p {MARKER_DIR} && : > "$0"', failed_path(step.index, step.step_hash)])
            raise SetupFailed(
                f"setup step {step.index + 1} '{step.name}' failed with exit code {code}; last lines:\n" + "\n".join(tail),
                hint="fix the cause and run `envctl up` again: it resumes at this step",
            )
        # Exit 0: the wrapper wrote the marker before it let go of the claim (CLAIM_WRAPPER);
        # no exec of our own for it (three requests, each a round trip to an SSH host).
        outcomes.append(StepOutcome(step.name, "ran"))
    return outcomes
