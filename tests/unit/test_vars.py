"""`--var NAME=VALUE`: read from the command line, checked against the manifest's vars, typed as
the manifest types them, layered over profiles and variants, and carried into the plan (the
container's spec and label) so that an environment remembers what it was brought up with."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

from envctl.containers import LABEL_VARS
from envctl.decisions import vars_change
from envctl.errors import EXIT_USAGE, EnvctlError, ManifestError
from envctl.manifest import overrides
from envctl.manifest.loader import load
from envctl.hosts.local import LocalHost
from envctl.observe import observe
from envctl.plan import Options, build_plan

MANIFEST = """\
name: qwen
description: LoRA fine-tune of Qwen2.5
extends: ascend
vars:
  size: 7B
  cards: 1
  lr: 0.0001
  merged: false
  model: Qwen/Qwen2.5-${size}-Instruct
  home: ${QWEN_HOME:-/data}
  steps: ${STEPS:-100}
  weights: ${WEIGHTS_DIR}/qwen
default_variant: base
variants:
  base: {}
  14b:
    vars: {size: 14B, cards: 2}
device:
  kind: npu
  cards: ${cards}
image:
  ref: quay.io/ascend/cann:8.0
container:
  workdir: ${home}/work
  env:
    MODEL: ${model}
    STEPS: "${steps}"
"""

PROFILE = """\
vars:
  size: 3B
  region: cn
container:
  shm_size: 64g
"""


@pytest.fixture
def roots(tmp_path, clean_env, monkeypatch):
    (tmp_path / "m" / "qwen").mkdir(parents=True)
    (tmp_path / "m" / "profiles").mkdir()
    (tmp_path / "m" / "qwen" / "manifest.yaml").write_text(MANIFEST)
    (tmp_path / "m" / "profiles" / "ascend.yaml").write_text(PROFILE)
    monkeypatch.setenv("ENVCTL_MANIFEST_PATH", str(tmp_path / "m"))
    monkeypatch.setenv("WEIGHTS_DIR", "/weights")
    return tmp_path / "m"


def envctl(*args, env=None):
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env=env or os.environ, timeout=60)


# --- reading --var from the command line -------------------------------------------------

def test_values_are_everything_after_the_first_equals_sign():
    assert overrides.parse(["size=14B", "note=", "expr=a=b", "dotted.name=1"]) == {
        "size": "14B", "note": "", "expr": "a=b", "dotted.name": "1"}
    assert overrides.parse(None) == {}


@pytest.mark.parametrize("item, said", [
    ("size", "--var 'size': write NAME=VALUE"),
    ("=14B", "'' is not a variable name"),
    ("1size=14B", "'1size' is not a variable name"),
    ("my-size=14B", "'my-size' is not a variable name"),
    ("HF_TOKEN=hf_abc", "--var HF_TOKEN: a secret is not given on the command line"),
    ("api_key=k", "--var api_key: a secret is not given on the command line"),
    ("db_password=p", "--var db_password: a secret is not given on the command line"),
])
def test_malformed_or_secret_items_are_usage_errors(item, said):
    with pytest.raises(EnvctlError) as caught:
        overrides.parse([item])
    assert caught.value.exit_code == EXIT_USAGE and said in caught.value.message
    assert "hf_abc" not in caught.value.message + (caught.value.hint or "")


def test_a_name_given_twice_is_refused_naming_both_values():
    with pytest.raises(EnvctlError) as caught:
        overrides.parse(["size=14B", "cards=2", "size=7B"])
    assert caught.value.message == "--var size given twice ('14B' and '7B'); give it once"


# --- typed as the manifest types the var -------------------------------------------------

@pytest.mark.parametrize("text, written, value", [
    ("14B", "7B", "14B"),            # text stays text
    ("14", "7B", "14"),              # digits for a text var stay text
    ("2", 1, 2),                     # a number for a number
    ("-1", 1, -1),
    ("02", 1, 2),
    ("0.001", 0.0001, 0.001),
    ("1e-5", 0.0001, 1e-5),
    ("3", 0.5, 3.0),
    ("true", False, True),
    ("No", True, False),
    ("4", "${CARDS:-1}", 4),         # a whole reference: typed as interpolation types it
    ("0022", "${CARDS:-1}", "0022"),  # ... only integers written plainly
    ("4x", "${CARDS:-1}", "4x"),
    ("4", "card-${N}", "4"),         # more than a reference: text
])
def test_values_take_the_type_of_the_manifests_own(text, written, value):
    got = overrides.typed("v", text, written)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text, written, said", [
    ("two", 1, "--var v=two: 'v' is a whole number in the manifest (1); 'two' is not one"),
    ("1.5", 1, "--var v=1.5: 'v' is a whole number in the manifest (1); '1.5' is not one"),
    ("fast", 0.1, "--var v=fast: 'v' is a number in the manifest (0.1); 'fast' is not one"),
    ("maybe", True, "--var v=maybe: 'v' is true or false in the manifest (true); give true or false"),
])
def test_a_value_that_cannot_have_the_manifests_type_is_refused(text, written, said):
    with pytest.raises(EnvctlError) as caught:
        overrides.typed("v", text, written)
    assert caught.value.message == said and caught.value.exit_code == EXIT_USAGE


# --- in the loader: layers, references, errors -------------------------------------------

def test_a_var_overrides_the_manifest_and_everything_that_reads_it(roots):
    loaded = load("qwen", vars={"size": "14B", "cards": "2"})
    m = loaded.manifest
    assert m.vars["size"] == "14B" and m.vars["model"] == "Qwen/Qwen2.5-14B-Instruct"
    assert m.container.env["MODEL"] == "Qwen/Qwen2.5-14B-Instruct"
    assert m.device.cards == 2 and m.vars["cards"] == 2
    assert loaded.overrides == {"size": "14B", "cards": 2}


def test_without_vars_the_manifest_and_its_variant_decide(roots):
    assert load("qwen").manifest.vars["model"] == "Qwen/Qwen2.5-7B-Instruct"  # the manifest over its profile's 3B
    assert load("qwen:14b").manifest.device.cards == 2
    assert load("qwen").overrides == {}


def test_a_var_wins_over_the_variant_and_the_profile(roots):
    loaded = load("qwen:14b", vars={"size": "32B", "region": "eu"})
    assert loaded.manifest.vars["size"] == "32B" and loaded.manifest.vars["region"] == "eu"
    assert loaded.manifest.device.cards == 2  # the variant's, untouched


def test_a_var_equal_to_the_manifests_value_is_not_kept_as_an_override(roots):
    loaded = load("qwen", vars={"size": "7B", "cards": "01", "home": "/data"})
    assert loaded.overrides == {} and loaded.manifest.vars["cards"] == 1
    assert load("qwen:14b", vars={"size": "7B"}).overrides == {"size": "7B"}  # the variant's is 14B


def test_a_var_replaces_a_manifest_value_that_could_not_be_resolved(roots, monkeypatch):
    monkeypatch.delenv("WEIGHTS_DIR")
    with pytest.raises(ManifestError) as caught:
        load("qwen")
    assert "variable 'WEIGHTS_DIR' is not set" in str(caught.value)
    loaded = load("qwen", vars={"weights": "/mnt/qwen"})
    assert loaded.manifest.vars["weights"] == "/mnt/qwen" and loaded.overrides == {"weights": "/mnt/qwen"}


def test_a_var_is_seen_by_vars_written_before_it(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent("""\
        name: m
        description: d
        vars: {model: "Qwen-${size}", size: 7B}
        device: {kind: cpu}
        image: {ref: x:1}
    """))
    assert load(str(path), vars={"size": "14B"}).manifest.vars["model"] == "Qwen-14B"


def test_environment_references_and_defaults_still_resolve_beside_vars(roots, monkeypatch):
    monkeypatch.setenv("QWEN_HOME", "/srv")
    m = load("qwen", vars={"steps": "5"}).manifest
    assert m.container.workdir == "/srv/work" and m.container.env["STEPS"] == "5" and m.vars["steps"] == 5


@pytest.mark.parametrize("given, said", [
    ({"sise": "14B"}, "--var sise: qwen:base has no var 'sise' (did you mean 'size'?); its vars: cards, home, "
                      "lr, merged, model, region, size, steps, weights"),
    ({"Size": "14B"}, "(did you mean 'size'?)"),
    ({"nothing_like_it": "1"}, "--var nothing_like_it: qwen:base has no var 'nothing_like_it'; its vars: "),
    ({"cards": "two"}, "--var cards=two: 'cards' is a whole number in the manifest (1); 'two' is not one"),
    ({"merged": "yes please"}, "'merged' is true or false in the manifest (false)"),
])
def test_unknown_names_and_mistyped_values_are_usage_errors(roots, given, said):
    with pytest.raises(EnvctlError) as caught:
        load("qwen", vars=given)
    assert said in caught.value.message and caught.value.exit_code == EXIT_USAGE


def test_a_name_read_from_the_environment_says_how_to_set_it(roots):
    with pytest.raises(EnvctlError) as caught:
        load("qwen", vars={"QWEN_HOME": "/x"})
    assert caught.value.message == "--var QWEN_HOME: qwen:base reads 'QWEN_HOME' from the environment, not from its vars"
    assert caught.value.hint == "set it for the command: QWEN_HOME=/x envctl ..."


def test_a_manifest_without_vars_says_so(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    path.write_text("name: m\ndescription: d\ndevice: {kind: cpu}\nimage: {ref: x:1}\n")
    with pytest.raises(EnvctlError) as caught:
        load(str(path), vars={"size": "1"})
    assert caught.value.message == "--var size: m has no var 'size'; its vars: none: it declares no vars"


def test_a_var_only_a_variant_declares_is_known_in_that_variant_alone(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent("""\
        name: m
        description: d
        variants:
          plain: {}
          lora: {vars: {rank: 8}}
        default_variant: plain
        device: {kind: cpu}
        image: {ref: x:1}
    """))
    assert load(str(path) + ":lora", vars={"rank": "16"}).manifest.vars["rank"] == 16
    with pytest.raises(EnvctlError) as caught:
        load(str(path), vars={"rank": "16"})
    assert "m:plain has no var 'rank'" in caught.value.message


# --- carried into the plan and the environment -----------------------------------------

def plan_of(loaded, tmp_path):
    """The plan on a host without cards and without asking the engine: the container spec is
    what it would be (its cards are a blocker, not part of the question here)."""
    host = LocalHost(str(tmp_path / "root"))
    (tmp_path / "root").mkdir(exist_ok=True)
    return build_plan(loaded, observe(host, loaded), Options(), {"ENVCTL_WORKSPACE": "/var/lib/w"})


def test_the_container_records_the_vars_it_was_made_with(roots, tmp_path):
    with_vars = plan_of(load("qwen", vars={"size": "14B"}), tmp_path)
    assert with_vars.container.vars == {"size": "14B"}
    assert json.loads(with_vars.container.labels()[LABEL_VARS]) == {"size": "14B"}
    plain = plan_of(load("qwen"), tmp_path)
    assert LABEL_VARS not in plain.container.labels() and "vars" not in plain.container.summary()
    assert plain.container.config_hash() != with_vars.container.config_hash()
    # the same environment (name), another configuration: a later up recreates it and says why
    assert plain.container.name == with_vars.container.name


def test_the_hash_of_a_container_without_vars_is_what_it_was_before_vars_existed(roots, tmp_path):
    spec = plan_of(load("qwen"), tmp_path).container
    from dataclasses import asdict
    import hashlib

    before = {k: v for k, v in asdict(spec).items() if k != "vars"}
    assert spec.config_hash() == hashlib.sha256(json.dumps(before, sort_keys=True, default=list,
                                                           ensure_ascii=False).encode()).hexdigest()


def test_a_change_of_vars_is_said_in_words():
    assert vars_change({"size": "14B"}, {}) == "--var size=14B dropped (the manifest's value now)"
    assert vars_change({}, {"cards": "2"}) == "--var cards=2 added"
    assert vars_change({"size": "7B", "cards": "2"}, {"size": "14B", "cards": "2"}) == "--var size=7B → 14B"


# --- the commands ----------------------------------------------------------------------

def test_show_plan_and_validate_take_var(roots):
    shown = envctl("show", "qwen", "--var", "size=14B")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].endswith("manifest.yaml with --var size=14B")
    assert yaml.safe_load(shown.stdout)["container"]["env"]["MODEL"] == "Qwen/Qwen2.5-14B-Instruct"
    checked = envctl("validate", "qwen", "--var", "size=14B")
    assert checked.returncode == 0 and "qwen [14b, base] with --var size=14B" in checked.stdout
    planned = envctl("plan", "qwen", "--var", "cards=2", "--json", env=dict(os.environ, DOCKER_HOST="unix:///nonexistent"))
    assert "--var cards=2" not in planned.stderr, planned.stderr
    document = json.loads(planned.stdout)
    assert document["container"]["vars"] == {"cards": "2"}
    assert json.loads(document["container"]["labels"][LABEL_VARS]) == {"cards": "2"}


@pytest.mark.parametrize("command", [
    ["show", "qwen"], ["validate", "qwen"], ["plan", "qwen"], ["up", "qwen", "--dry-run"], ["doctor", "qwen"],
    ["fetch", "qwen"], ["lock", "qwen"], ["export", "qwen", "-e", "train", "-n", "2"], ["build", "qwen"],
    ["image", "qwen"], ["save", "qwen", "-o", "x.tar"],
])
def test_every_command_that_resolves_a_manifest_refuses_an_unknown_var_alike(roots, command):
    done = envctl(*command, "--var", "sise=14B", env=dict(os.environ, DOCKER_HOST="unix:///nonexistent"))
    assert done.returncode == EXIT_USAGE, (command, done.stderr)
    # validate and lock go through every variant: the first one they try is named
    assert re.match(r"error: --var sise: qwen:(base|14b) has no var 'sise' \(did you mean 'size'\?\)", done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_var_without_a_manifest_is_a_usage_error(roots):
    for command in (["validate"], ["doctor"]):
        done = envctl(*command, "--var", "size=14B")
        assert done.returncode == EXIT_USAGE and "--var sets the vars of the manifest" in done.stderr, done.stderr


def test_up_with_a_saved_plan_refuses_var(roots, tmp_path):
    saved = tmp_path / "plan.json"
    saved.write_text("{}")
    done = envctl("up", "--plan", str(saved), "--var", "size=14B")
    assert done.returncode == EXIT_USAGE and "drop NAME, --var" in done.stderr, done.stderr


def test_a_saved_plan_keeps_its_vars_and_a_malformed_one_is_refused(tmp_path):
    from envctl import saved_plans

    doc = saved_plans.document({}, "/m.yaml", None, None, False, vars={"size": "14B"})
    assert doc["vars"] == {"size": "14B"}
    assert "vars" not in saved_plans.document({}, "/m.yaml", None, None, False)
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**doc, "vars": {"size": 14}}))
    with pytest.raises(EnvctlError) as caught:
        saved_plans.read(path)
    assert "\"vars\" must be an object of --var values (text)" in caught.value.message


def test_validate_with_a_var_one_variant_declares_checks_that_variant(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent("""\
        name: m
        description: d
        variants:
          plain: {}
          lora: {vars: {rank: 8}}
        default_variant: plain
        device: {kind: cpu}
        image: {ref: x:1}
    """))
    done = envctl("validate", str(path), "--var", "rank=16")
    assert done.returncode == 0 and done.stdout == f"ok: m [lora] with --var rank=16 ({path}); not plain, which lack a var given\n"
    done = envctl("validate", str(path), "--var", "rang=16")
    assert done.returncode == EXIT_USAGE and "has no var 'rang' (did you mean 'rank'?)" in done.stderr


def test_a_value_is_taken_as_written_not_expanded(roots):
    m = load("qwen", vars={"size": "${WEIGHTS_DIR}"}).manifest
    assert m.vars["size"] == "${WEIGHTS_DIR}" and m.container.env["MODEL"] == "Qwen/Qwen2.5-${WEIGHTS_DIR}-Instruct"


# --- a problem in a value that came from outside the file says where it came from ----------

def test_a_bad_value_given_by_var_or_the_environment_is_traced_to_it(roots, tmp_path, monkeypatch):
    """The problem is reported at the line holding `${...}`, which does not show the bad value's
    source: the message names the --var (with its value) or the environment variable (by name
    only), also through a var that took it (`model: Qwen/Qwen2.5-${size}-Instruct`)."""
    bundle = tmp_path / "m" / "traced"
    bundle.mkdir()
    (bundle / "manifest.yaml").write_text(textwrap.dedent("""\
        name: traced
        description: values from outside the file
        vars: {tag: "8.0", size: 7B, model: "Qwen/Qwen2.5-${size}-Instruct", shm: lots}
        container: {shm_size: "${shm}"}
        device: {kind: npu, cards: "${CARDS:-1}"}
        image: {ref: "quay.io/ascend/cann:${tag}"}
        artifacts:
          m: {source: "hf://${model}@main"}
          k: {source: "hf://Qwen/${SECRET_TOKEN}@main"}
        """))
    monkeypatch.setenv("CARDS", "x")
    monkeypatch.setenv("SECRET_TOKEN", "a/hf_abcdefgh")
    with pytest.raises(ManifestError) as caught:
        load("traced", vars={"tag": "v2:x", "size": "a/b"})
    said = {p.path: p.message for p in caught.value.problems}
    assert said["image.ref"].endswith("(${tag} ← --var tag=v2:x)")
    assert said["artifacts.m.source"].endswith("(${model} ← ${size} ← --var size=a/b)")
    assert said["device.cards"].endswith("(${CARDS:-1} ← environment CARDS)")
    assert said["artifacts.k.source"].endswith("(${SECRET_TOKEN} ← environment SECRET_TOKEN)")
    assert "hf_abcdefgh" not in str(caught.value)  # a secret's value expanded into a refused source is masked
    assert "'hf://Qwen/***@main'" in said["artifacts.k.source"]
    assert "←" not in said["container.shm_size"]  # a value the file gives itself: nothing added
    with pytest.raises(ManifestError) as plain:
        load("traced", vars={"tag": "8.0"}, environ={**os.environ, "CARDS": "1", "SECRET_TOKEN": "x"})
    assert [(p.path, "←" in p.message) for p in plain.value.problems] == [("container.shm_size", False)]


def test_a_value_with_a_line_break_keeps_shows_output_yaml(roots):
    """`show` (its header) and `show --origin` (its comments) name --var values: one with a line
    break or another control character is written escaped on one line, so that both outputs
    still read back as the same YAML, holding the value itself."""
    value = "a\nb # c\td"
    plain = envctl("show", "qwen", "--var", f"size={value}")
    origin = envctl("show", "qwen", "--origin", "--var", f"size={value}")
    assert plain.returncode == 0 and origin.returncode == 0, plain.stderr + origin.stderr
    assert plain.stdout.splitlines()[0].endswith('with --var size="a\\nb # c\\td"')
    assert yaml.safe_load(plain.stdout) == yaml.safe_load(origin.stdout)
    assert yaml.safe_load(plain.stdout)["container"]["env"]["MODEL"] == f"Qwen/Qwen2.5-{value}-Instruct"
    assert '${size} ← --var size="a\\nb # c\\td"' in origin.stdout
    assert overrides.describe({"size": "14B", "note": "x y"}) == "--var size=14B --var note=x y"  # plain ones as given
