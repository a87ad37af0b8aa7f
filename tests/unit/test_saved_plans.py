"""A saved plan file that was edited by hand or cut short is refused as a whole (exit 2, naming
the field), before any of it is used: before, a missing "options" ended as an internal error
(exit 70), a number as "manifest_file" was looked up as a manifest named '5', and the string
"no" as skip_driver_check read as true."""

import json

import pytest

from envctl import saved_plans
from envctl.errors import EXIT_USAGE, EnvctlError


def good() -> dict:
    return saved_plans.document({"local": {"summary": {}, "ready": True}}, "/srv/m/busy.yaml", None, (0, 1), False)


def test_a_plan_as_envctl_writes_it_reads_back(tmp_path):
    path = tmp_path / "plan.json"
    saved_plans.write(path, good())
    assert saved_plans.read(path) == good()
    without_cards = saved_plans.document({}, "/srv/m/busy.yaml", "13b", None, True)
    saved_plans.write(path, without_cards)
    assert saved_plans.read(path)["options"] == {"cards": None, "skip_driver_check": True, "share_cards": False}
    a_count = saved_plans.document({}, "/srv/m/busy.yaml", None, 2, False, share_cards=True)
    saved_plans.write(path, a_count)
    assert saved_plans.read(path)["options"] == {"cards": 2, "skip_driver_check": False, "share_cards": True}


@pytest.mark.parametrize("edit, named", [
    (lambda d: d.pop("options"), '"options"'),
    (lambda d: d.update(options=None), '"options"'),
    (lambda d: d.update(options=[]), '"options"'),
    (lambda d: d["options"].pop("skip_driver_check"), '"options.skip_driver_check"'),
    (lambda d: d["options"].update(skip_driver_check="no"), '"options.skip_driver_check"'),
    (lambda d: d["options"].update(skip_driver_check=0), '"options.skip_driver_check"'),
    (lambda d: d["options"].update(cards="0-3"), '"options.cards"'),
    (lambda d: d["options"].update(cards=[0, "1"]), '"options.cards"'),
    (lambda d: d["options"].update(cards=[-1]), '"options.cards"'),
    (lambda d: d["options"].update(cards=[True]), '"options.cards"'),
    (lambda d: d["options"].update(cards={"0": 1}), '"options.cards"'),
    (lambda d: d.pop("manifest_file"), '"manifest_file"'),
    (lambda d: d.update(manifest_file=5), '"manifest_file"'),
    (lambda d: d.update(manifest_file=None), '"manifest_file"'),
    (lambda d: d.update(manifest_file=""), '"manifest_file"'),
    (lambda d: d.update(variant=5), '"variant"'),
    (lambda d: d.update(variant=["13b"]), '"variant"'),
    (lambda d: d.pop("plans"), '"plans"'),
    (lambda d: d.update(plans=[]), '"plans"'),
    (lambda d: d.update(plans={"local": "x"}), '"plans"'),
    (lambda d: d.update(plans={"local": None}), '"plans"'),
])
def test_a_hand_edited_plan_is_refused_naming_the_field(tmp_path, edit, named):
    doc = good()
    edit(doc)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(EnvctlError) as refused:
        saved_plans.read(path)
    assert refused.value.exit_code == EXIT_USAGE
    assert f"{path} is not a saved plan as envctl writes it: {named}" in refused.value.message
    assert "envctl plan NAME -o FILE" in refused.value.hint


def test_a_difference_at_the_top_is_named_the_plan():
    assert saved_plans.differences("x", {"a": 1}) == ['the plan: x → {"a": 1}']
    assert saved_plans.differences({"a": 1}, {"a": 2}) == ["a: 1 → 2"]


def test_a_plan_made_without_the_engine_is_not_saved(tmp_path, clean_env):
    """Its image, container and setup decisions are all unknown: `up --plan` would refuse it
    every time, so `plan -o` says why and writes nothing."""
    import os
    import subprocess
    import sys

    manifest = tmp_path / "no-engine.yaml"
    manifest.write_text("name: no-engine\ndescription: a plan without an engine\ndevice: {kind: cpu}\n"
                        "image: {ref: lab/base:1}\n", encoding="utf-8")
    saved = tmp_path / "plan.json"
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    done = subprocess.run([sys.executable, "-m", "envctl", "plan", str(manifest), "-o", str(saved)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 5, done.stderr
    assert f"not saved to {saved}: the Docker engine of local could not be asked" in done.stderr
    assert "hint:" in done.stderr and "Traceback" not in done.stderr
    assert not saved.exists()
