"""Every shipped accelerator manifest, run by the CLI in stand-in vendor images (issue 5).

For each manifest: `envctl up` on a simulated MLU or Ascend host (device nodes made with mknod),
the image loaded from a `docker save` tarball of the stand-in (tests/images/standin-mlu, -ascend)
through the variable the manifest names, every artifact fetched by envctl from loopback servers
(tests/standin_upstream.py), every setup step run in the container; then `envctl exec` of every
entrypoint, with its defaults, with `--set` overrides, and after `up --cards` for a launcher; the
gradio servers (FastChat's web UI through web.sh, ChatGLM2-6B's web_demo.py, the Alpaca-2 chat)
with `exec --detach`, which returns once the manifest's `ready:` answers, then `envctl stop`.

The stand-ins record each call (argv, working directory, environment, which path arguments
existed) in the workspace; the test compares the calls with
- the tutorials' own commands (tests/standin_cases.py, `Expect`), and
- a golden file per manifest (tests/golden/standins/; ENVCTL_UPDATE_GOLDEN=1 rewrites them).

What this cannot prove (numerics, the vendor tools' real output, performance) is listed in the
README, "What was proven where".
"""

from __future__ import annotations

import json
import re

import pytest

import golden
from envctl.manifest.loader import load
from standin_calls import CallLog, normalize
from standin_cases import CASES, Case
from standin_lab import open_lab
from support import REPO

GOLDEN = REPO / "tests" / "golden" / "standins"


@pytest.fixture(scope="module")
def lab(engine, tmp_path_factory):
    with open_lab(engine, tmp_path_factory.mktemp("standins")) as made:
        yield made


def container_env(engine, name: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in engine.containers.get(name).attrs["Config"]["Env"])


def check_expectations(case: Case, report: dict) -> None:
    runs = {"up": (report["container_env"], report["up"])}
    for run in report["runs"]:
        runs.setdefault(run["run"], (run.get("container_env", report["container_env"]), run["calls"]))
    for expect in case.expect:
        base_env, calls = runs[expect.run]
        found = [c for c in calls if c["cwd"] == expect.cwd and (
            c["command"] == expect.command or (expect.prefix and c["command"].startswith(expect.command + " ")))]
        listing = "\n".join(f"  {c['command']}   (in {c['cwd']})" for c in calls)
        assert found, f"{case.reference}, {expect.run}: the tutorial's `{expect.command}` in {expect.cwd} was not run; calls:\n{listing}"
        call = found[0]
        seen = {**base_env, **call["env"]}
        for name, value in expect.env.items():
            assert seen.get(name) == value, f"{case.reference}, {expect.run}, `{expect.command}`: {name}={seen.get(name)!r}, not {value!r}"
        if expect.workers is not None:
            assert call.get("workers", {}).get("count") == expect.workers, f"{case.reference}, {expect.run}: workers {call.get('workers')}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.reference)
def test_the_tutorials_commands_run_in_the_standin_image(lab, case, engine):
    manifest = lab.root / "manifests" / case.manifest / "manifest.yaml"
    entrypoints = set(load(manifest, variant=case.variant).manifest.entrypoints)
    if case.variant in (None, "13b"):
        assert {run.entry for run in case.runs} == entrypoints, "every entrypoint is exec'ed"
    env = lab.environ(case)
    log = CallLog(lab.workspace(case))
    try:
        up = lab.envctl(env, "up", case.reference)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-5000:]
        # The first manifest of a family loads the tarball; both MLU refs are in one, so the
        # second finds its image present; every one runs the stand-in.
        assert re.search(r"^image +\S+: (loaded|tagged|present)", up.stderr, re.MULTILINE), up.stderr
        assert engine.containers.get(case.container).image.id == lab.image_ids[case.kind]
        report = {"manifest": case.reference, "container_env": container_env(engine, case.container)}
        report["up"] = normalize(log.since(0), report["container_env"])
        report["runs"] = []
        for run in case.runs:
            entry = {"run": run.label}
            base_env = report["container_env"]
            if run.up_cards:
                again = lab.envctl(env, "up", case.reference, "--cards", run.up_cards)
                assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
                base_env = entry["container_env"] = container_env(engine, case.container)
            mark = log.mark()
            sets = [arg for s in run.sets for arg in ("--set", s)] + (["--detach"] if run.detach else [])
            done = lab.envctl(env, "exec", run.entry, "--env", case.container, *sets)
            assert done.returncode == run.exit_code, \
                f"{run.label}: exit {done.returncode}, expected {run.exit_code}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            if run.detach:  # a server: it answered as its ready: says, then stop ends it (and all it started)
                assert f"ready    {run.entry} in {case.container}" in done.stdout, done.stdout + done.stderr
                stopped = lab.envctl(env, "stop", run.entry, "--env", case.container)
                assert stopped.returncode == 0 and "stopped by SIGTERM" in stopped.stdout, stopped.stdout + stopped.stderr
            entry["calls"] = normalize(log.since(mark), base_env, case.drawn.get(run.entry, ()), run.entry in case.dated)
            assert entry["calls"], f"{run.label} ran nothing the stand-ins record"
            report["runs"].append(entry)
        check_expectations(case, report)
        golden.check(GOLDEN / f"{case.golden_name}.json", json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    finally:
        lab.envctl(env, "down", case.container, "--purge")
