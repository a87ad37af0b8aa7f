"""setup_steps.exec_body is the body docker-py's exec_create sends for a setup step's exec (what
run_planned makes through docker-py), so that an exec made beside the container's start
(lifecycle._start_then_exec) is the same exec. Compared with the body docker-py builds for
run_planned's own exec_create, caught before it is sent."""

from __future__ import annotations

import json
from types import SimpleNamespace

import docker
import pytest

from envctl.plan import RunSetup
from envctl.markers import EXIT_WORD
from envctl.setup_steps import exec_body, run_planned

CONTAINER = "c" * 64


def _run_planneds(api, step, passed) -> dict:
    """The body docker-py would send for the exec run_planned makes for `step` (caught before
    it is sent; the exec's output is the wrapper's exit word alone)."""
    sent = {}

    def post_json(url, data=None, **_kwargs):
        # docker-py's _post_json: None values left out, then JSON
        sent["body"] = json.loads(json.dumps({k: v for k, v in data.items() if v is not None}))

    api._post_json = post_json
    api._result = lambda *_args, **_kwargs: {"Id": "x"}
    api.exec_start = lambda *_args, **_kwargs: iter([f"{EXIT_WORD} 0\n".encode()])
    steps = run_planned(SimpleNamespace(api=api), CONTAINER, (step,), lambda _line: None, passed=passed)
    assert [s.action for s in steps] == ["ran"]
    return sent["body"]


@pytest.mark.parametrize("workdir", [None, "/work"])
@pytest.mark.parametrize("passed", [{}, {"TOKEN": "t", "WHO": "passed"}])
@pytest.mark.parametrize("detach_keys", [None, "ctrl-x"])
def test_the_body_is_docker_pys(workdir, passed, detach_keys):
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    if detach_keys:
        api._general_configs["detachKeys"] = detach_keys
    step = RunSetup(index=2, name="step three", argv=("sh", "-c", "echo 'a b'\nexit 0"), workdir=workdir,
                    env={"WHO": "step", "EMPTY": ""}, uses=(), step_hash="2" * 64, action="run")
    assert json.loads(json.dumps(exec_body(api, CONTAINER, step, passed))) == _run_planneds(api, step, passed)


def test_what_docker_py_would_refuse_makes_no_body():
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.30")
    step = RunSetup(index=0, name="s", argv=("true",), workdir="/w", env={}, uses=(), step_hash="3" * 64)
    assert exec_body(api, CONTAINER, step) is None
    older = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.24")  # no exec environment yet
    assert exec_body(older, CONTAINER, RunSetup(0, "s", ("true",), None, {}, (), "4" * 64)) is None
