"""Combined variants (`NAME:14b+merged`, applied left to right), the names Docker gets for them,
and `show --origin` / `show --json`: which layer and which file:line set each value."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

from envctl.errors import ManifestError
from envctl.manifest import docker_values
from envctl.manifest.loader import load
from envctl.manifest.model import variant_slug

MANIFEST = """\
name: qwen
description: LoRA fine-tune of Qwen2.5, and serving it
extends: ascend
vars:
  size: 7B
  cards: 1
  model: Qwen/Qwen2.5-${size}-Instruct
  home: ${QWEN_HOME:-/data}
default_variant: 7b
variants:
  7b: {}
  14b:
    vars: {size: 14B, cards: 2}
  32b:
    vars: {size: 32B, cards: 4}
  merged:
    container:
      env: {WEIGHTS: merged}
  serve:
    container:
      env: {WEIGHTS: served, PORT: "8000"}
  bf16:
    container:
      env: {DTYPE: bf16}
  no-shm:
    container:
      shm_size: null
device:
  kind: npu
  cards: ${cards}
image:
  ref: quay.io/ascend/cann:8.0
container:
  workdir: ${home}/work
  env:
    MODEL: ${model}
    WEIGHTS: base
"""

PROFILE = """\
device:
  kind: npu
container:
  shm_size: 64g
  ipc: host
"""


@pytest.fixture
def roots(tmp_path, clean_env, monkeypatch):
    (tmp_path / "m" / "qwen").mkdir(parents=True)
    (tmp_path / "m" / "profiles").mkdir()
    (tmp_path / "m" / "qwen" / "manifest.yaml").write_text(MANIFEST)
    (tmp_path / "m" / "profiles" / "ascend.yaml").write_text(PROFILE)
    monkeypatch.setenv("ENVCTL_MANIFEST_PATH", str(tmp_path / "m"))
    return tmp_path / "m"


def envctl(*args, env=None):
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env=env or os.environ, timeout=60)


def problems(reference, **kwargs):
    with pytest.raises(ManifestError) as caught:
        load(reference, **kwargs)
    return [str(p) for p in caught.value.problems]


# --- combining -------------------------------------------------------------------------

def test_a_combination_applies_each_variant_in_order(roots):
    m = load("qwen:14b+merged").manifest
    assert m.variant == "14b+merged"
    assert m.vars["size"] == "14B" and m.device.cards == 2
    assert m.container.env == {"MODEL": "Qwen/Qwen2.5-14B-Instruct", "WEIGHTS": "merged"}
    assert m.container.shm_size == "64g" and m.container.ipc == "host"  # the profile underneath stays


def test_the_later_variant_wins_where_both_set_a_value(roots):
    env = load("qwen:serve+merged").manifest.container.env
    assert env["WEIGHTS"] == "merged" and env["PORT"] == "8000"  # serve's other value stays
    env = load("qwen:serve+bf16").manifest.container.env
    assert env["WEIGHTS"] == "served" and env["DTYPE"] == "bf16"


def test_three_variants_and_a_removal(roots):
    m = load("qwen:32b+bf16+no-shm").manifest
    assert m.device.cards == 4 and m.container.env["DTYPE"] == "bf16" and m.container.shm_size is None


def test_a_single_variant_is_as_before(roots):
    m = load("qwen:14b").manifest
    assert m.variant == "14b" and m.container_name == "envctl-qwen-14b"
    assert load("qwen").manifest.variant == "7b"


@pytest.mark.parametrize("reference, said", [
    ("qwen:14b+mergd", "no variant 'mergd' (did you mean 'merged'?); variants: 14b, 32b, 7b, bf16, merged, no-shm, serve"),
    ("qwen:41b+merged", "no variant '41b' (did you mean '14b'?)"),
    # the same name in other case is the first guess (difflib alone gives none for short names)
    ("qwen:14B", "no variant '14B' (did you mean '14b'?)"),
    ("qwen:BF16+merged", "no variant 'BF16' (did you mean 'bf16'?)"),
    ("qwen:14b+merged+14b", "'14b+merged+14b' selects variant '14b' twice; name each variant once"),
    ("qwen:merged+merged", "'merged+merged' selects variant 'merged' twice"),
    ("qwen:14b+", "'14b+' is not a variant selection: write NAME:VARIANT or NAME:A+B (no empty name around '+')"),
    ("qwen:+merged", "'+merged' is not a variant selection"),
    ("qwen:14b++merged", "'14b++merged' is not a variant selection"),
    # 14b sets size and cards, 32b sets both again: two alternatives, not a combination
    ("qwen:14b+32b", "'14b+32b': every value variant '14b' sets, '32b' sets again, so '14b' would change nothing; "
                     "they are alternatives, choose one"),
    ("qwen:merged+serve+14b", None),  # serve sets WEIGHTS again, but merged... sets nothing else: refused below
])
def test_wrong_selections_are_located_at_the_variants(roots, reference, said):
    if said is None:
        said = "'merged+serve+14b': every value variant 'merged' sets, 'serve' sets again"
    found = problems(reference)
    assert len(found) == 1 and re.match(r".*/qwen/manifest\.yaml:10:1: variants: ", found[0]), found
    assert said in found[0], found


def test_a_variant_that_keeps_some_value_of_its_own_may_come_first(roots):
    # 14b sets size and cards; merged sets neither: both count
    assert load("qwen:14b+merged").manifest.container.env["WEIGHTS"] == "merged"
    # serve sets WEIGHTS and PORT; merged sets WEIGHTS only: serve's PORT stays, so serve+merged is a combination
    assert load("qwen:serve+merged").manifest.variant == "serve+merged"


def test_an_empty_variant_combines_with_anything(roots):
    assert load("qwen:7b+merged").manifest.container.env["WEIGHTS"] == "merged"


def test_a_removal_followed_by_a_value_below_it_is_not_refused(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent("""\
        name: m
        description: d
        variants:
          bare: {container: {env: null}}
          one: {container: {env: {A: "1"}}}
        device: {kind: cpu}
        image: {ref: x:1}
        container: {env: {B: "2"}}
    """))
    # without bare, A would join B; bare first removes B: it changes something
    assert load(str(path) + ":bare+one").manifest.container.env == {"A": "1"}
    assert load(str(path) + ":one").manifest.container.env == {"A": "1", "B": "2"}


def test_a_manifest_without_variants_refuses_a_combination(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    path.write_text("name: m\ndescription: d\ndevice: {kind: cpu}\nimage: {ref: x:1}\n")
    assert problems(str(path) + ":a+b") == [f"{path}: variants: 'm' has no variants, so ':a+b' cannot be selected"]


def test_default_variant_may_be_a_combination_and_is_checked_like_one(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    base = textwrap.dedent("""\
        name: m
        description: d
        variants:
          big: {device: {cards: 2}}
          fast: {container: {env: {FAST: "1"}}}
        device: {kind: npu, cards: 1}
        image: {ref: x:1}
    """)
    path.write_text(base + "default_variant: big+fast\n")
    assert load(str(path)).manifest.variant == "big+fast"
    path.write_text(base + "default_variant: big+fsat\n")
    found = problems(str(path) + ":big")
    assert found == [f"{path}:8:18: default_variant: no variant 'fsat' (did you mean 'fast'?); variants: big, fast"]


# --- names Docker gets ------------------------------------------------------------------

def test_the_default_container_name_of_a_combination_is_a_valid_stable_docker_name(roots):
    name = load("qwen:14b+merged").manifest.container_name
    assert docker_values.container_name(name) == name
    assert re.fullmatch(r"envctl-qwen-14b-merged-[0-9a-f]{6}", name)
    assert load("qwen:14b+merged").manifest.container_name == name  # the same every time
    assert load("qwen:merged+14b").manifest.container_name != name  # another order is another environment
    assert load("qwen:14b").manifest.container_name == "envctl-qwen-14b"


def test_a_combination_never_takes_the_name_of_a_variant_spelt_like_it():
    assert variant_slug("14b+merged") != "14b-merged"
    assert variant_slug("a-b+c") != variant_slug("a+b-c")
    assert variant_slug("14b") == "14b"


def test_a_combinations_baked_image_repository_is_valid(roots):
    from envctl.bake import baked_ref
    from envctl.hosts.local import LocalHost
    from envctl.observe import observe
    from envctl.plan import Options, build_plan

    loaded = load("qwen:14b+merged")
    host = LocalHost(str(roots / "root"))
    (roots / "root").mkdir()
    plan = build_plan(loaded, observe(host, loaded), Options(), {"ENVCTL_WORKSPACE": "/w"})
    ref, _ = baked_ref(plan, "sha256:" + "0" * 64)
    repository = ref.split(":")[0]
    assert docker_values.repository_component(repository.split("/", 1)[1]), ref
    assert plan.container.name == loaded.manifest.container_name and plan.container.variant == "14b+merged"


# --- show --origin and show --json ------------------------------------------------------

def test_show_origin_names_each_values_layer_and_line(roots):
    done = envctl("show", "qwen:14b+merged", "--var", "cards=3", "--origin")
    assert done.returncode == 0, done.stderr

    def line(key, which=0):
        return [x for x in done.stdout.splitlines() if x.strip().startswith(key + ":")][which]

    assert line("size").endswith("# variant 14b manifest.yaml:13")
    assert line("cards").endswith("# --var")  # vars.cards
    assert line("cards", 1).endswith("# manifest manifest.yaml:30; ${cards} ← --var cards=3")  # device.cards
    assert line("model").endswith("# manifest manifest.yaml:7; ${size} ← vars.size (variant 14b manifest.yaml:13)")
    assert line("home").endswith("# manifest manifest.yaml:8; ${QWEN_HOME:-/data} ← its default")
    assert line("variant").endswith("# command line")
    assert line("kind").endswith("# manifest manifest.yaml:29")  # the profile's too, but the manifest's wins
    assert line("shm_size").endswith("# profile ascend ../profiles/ascend.yaml:4")
    assert line("WEIGHTS").endswith("# variant merged manifest.yaml:18")
    assert line("MODEL").endswith("# manifest manifest.yaml:36; ${model} ← vars.model (manifest manifest.yaml:7; "
                                  "${size} ← vars.size (variant 14b manifest.yaml:13))")
    assert line("privileged").endswith("# envctl's default")


def test_show_origin_says_which_environment_variable_gave_a_value_and_never_its_secret(roots):
    env = dict(os.environ, QWEN_HOME="/srv/qwen")
    done = envctl("show", "qwen", "--origin", env=env)
    home = [line for line in done.stdout.splitlines() if line.strip().startswith("home:")][0]
    assert home.endswith("# manifest manifest.yaml:8; ${QWEN_HOME:-/data} ← environment QWEN_HOME")
    assert [line for line in done.stdout.splitlines() if line.strip().startswith("variant:")][0].endswith(
        "# manifest manifest.yaml:9")  # chosen by default_variant


def test_the_commented_text_reads_back_as_the_plain_text(roots):
    plain = envctl("show", "qwen:serve+merged")
    commented = envctl("show", "qwen:serve+merged", "--origin")
    assert plain.returncode == commented.returncode == 0
    assert yaml.safe_load(commented.stdout) == yaml.safe_load(plain.stdout)
    assert "# " in commented.stdout.splitlines()[3]


def test_show_origin_of_a_multi_line_script_and_lists(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent("""\
        name: m
        description: d
        device: {kind: cpu}
        image: {ref: x:1}
        setup:
          - name: install
            run: |
              pip install -e .
              echo done
        container:
          cap_add: [SYS_PTRACE]
    """))
    done = envctl("show", str(path), "--origin")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    run = [line for line in lines if line.strip().startswith("run:")][0]
    assert run.startswith("  run: |") and run.endswith("# manifest m.yaml:7")
    assert [line for line in lines if "SYS_PTRACE" in line][0].endswith("# manifest m.yaml:11")
    assert yaml.safe_load(done.stdout)["setup"][0]["run"] == "pip install -e .\necho done\n"


def test_show_json_gives_the_manifest_and_every_values_origin(roots):
    done = envctl("show", "qwen:14b+merged", "--var", "cards=3", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["variant"] == "14b+merged" and document["vars_given"] == {"cards": "3"}
    assert document["file"] == str(roots / "qwen" / "manifest.yaml")
    assert document["manifest"]["container"]["env"]["MODEL"] == "Qwen/Qwen2.5-14B-Instruct"
    origins = document["origins"]
    assert origins["vars.cards"] == {"layer": "--var"}
    assert origins["container.shm_size"] == {"layer": "profile ascend", "file": str(roots / "profiles" / "ascend.yaml"),
                                              "line": 4, "column": 13}
    assert origins["container.env.MODEL"]["references"] == [{
        "reference": "${model}", "name": "model", "from": "vars",
        "origin": {"layer": "manifest", "file": str(roots / "qwen" / "manifest.yaml"), "line": 7, "column": 10,
                   "references": [{"reference": "${size}", "name": "size", "from": "vars",
                                   "origin": {"layer": "variant 14b", "file": str(roots / "qwen" / "manifest.yaml"),
                                              "line": 13, "column": 18}}]}}]
    assert origins["device.cards"]["references"] == [{"reference": "${cards}", "name": "cards", "from": "--var"}]
    assert origins["container.privileged"] == {"layer": "default"}
    assert set(origins) >= {"name", "description", "image.ref", "container.workdir", "container.shell[0]"}


def test_show_json_redacts_secrets_as_the_text_does(tmp_path, clean_env):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent("""\
        name: m
        description: d
        device: {kind: cpu}
        image: {ref: x:1}
        container:
          env: {HF_TOKEN: "${HF_TOKEN}", URL: "https://u:pw-secret@example.com/x"}
    """))
    done = envctl("show", str(path), "--json", env=dict(os.environ, HF_TOKEN="hf_verysecret"))
    assert done.returncode == 0, done.stderr
    assert "hf_verysecret" not in done.stdout and "pw-secret" not in done.stdout
    assert json.loads(done.stdout)["origins"]["container.env.HF_TOKEN"]["references"] == [
        {"reference": "${HF_TOKEN}", "name": "HF_TOKEN", "from": "environment"}]


@pytest.mark.parametrize("reference", ["chatglm3-mlu", "chinese-alpaca2-mlu:13b", "chatglm-tiny-cpu:nodes"])
def test_show_origin_of_shipped_manifests_reads_back_and_names_their_profiles(reference, clean_env):
    plain = envctl("show", reference)
    commented = envctl("show", reference, "--origin")
    assert plain.returncode == commented.returncode == 0, commented.stderr
    assert yaml.safe_load(commented.stdout) == yaml.safe_load(plain.stdout)
    lines = commented.stdout.splitlines()[1:]
    # every value says where it came from, on a line of its own (a script's lines follow its key's)
    origins = json.loads(envctl("show", reference, "--json").stdout)["origins"]
    assert len([line for line in lines if "  # " in line]) == len(origins)
    if reference != "chatglm-tiny-cpu:nodes":
        assert any("# profile " in line for line in lines)
    else:
        assert any("# variant nodes manifest.yaml:" in line for line in lines)


def test_other_names_in_other_case_are_guessed_too(roots):
    """Manifests, profiles and --var names: one did-you-mean rule (envctl/manifest/did_you_mean.py)."""
    shown = envctl("show", "QWEN")
    assert shown.returncode == 4 and "no manifest named 'QWEN' (did you mean 'qwen'?)" in shown.stderr
    given = envctl("show", "qwen", "--var", "SIZE=14B")
    assert given.returncode == 2 and "has no var 'SIZE' (did you mean 'size'?)" in given.stderr
    (roots / "qwen" / "manifest.yaml").write_text(MANIFEST.replace("extends: ascend", "extends: Ascend"))
    assert "profile 'Ascend' not found (did you mean 'ascend'?)" in "\n".join(problems("qwen"))


def test_a_colon_with_no_variant_after_it_says_so(roots):
    shown = envctl("show", "qwen:")
    assert shown.returncode == 4, shown.stderr
    assert "'qwen:' names no variant after ':'; write qwen:VARIANT (or qwen:A+B), or qwen for its default variant" \
        in shown.stderr
