"""Manifests as people write them: YAML merge keys and anchors, read through the loader and
through the command line.

Merge keys follow https://yaml.org/type/merge.html: keys written in the mapping itself win
over merged ones; of `<<: [*a, *b]` the first listed wins. PyYAML 6.0.2+ gets the latter
wrong for keys longer than one letter (yaml/pyyaml#953), so envctl applies merges itself and
these tests use multi-letter keys.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from envctl.errors import ManifestError
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
from envctl.manifest.yamlsrc import parse_text

AS_WRITTEN = Path(__file__).resolve().parents[1] / "fixtures" / "as_written"


def envctl(*args, env):
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env, timeout=60)


def loaded(path, environ, variant=None):
    return load(path, environ=dict(environ), roots=search_roots(dict(environ)), variant=variant)


# --- merge keys -------------------------------------------------------------------------------

def test_an_entrypoint_reusing_another_overrides_its_params(clean_env):
    entries = loaded(AS_WRITTEN / "merge_keys.yaml", clean_env).manifest.entrypoints
    assert dict(entries["train"].params) == {"lr": "1e-4", "epochs": 3}
    long = entries["train-long"]
    assert (long.run, long.workdir, long.description) == ("bash train.sh", "/workspace", "fine-tune for longer")
    assert dict(long.params) == {"lr": "5e-5", "epochs": 10}


def test_of_a_merged_list_the_first_mapping_wins_and_the_own_key_wins_over_both(clean_env):
    params = loaded(AS_WRITTEN / "merge_keys.yaml", clean_env).manifest.entrypoints["eval-mixed"].params
    # *large is listed first: its max_length wins over *small's; batch_size is written in place.
    assert dict(params) == {"max_length": 4096, "batch_size": 2, "precision": "bf16"}


def test_a_mapping_merged_from_one_that_merges_keeps_that_ones_overrides(clean_env):
    entries = loaded(AS_WRITTEN / "merge_keys.yaml", clean_env).manifest.entrypoints
    assert entries["nested"].workdir == "/data" and entries["nested"].run == "bash train.sh"
    assert entries["nested-again"].workdir == "/data"
    assert entries["nested-again"].description == "merged from a mapping that merges"


def test_merged_environment_with_an_override_and_extension_fields_ignored(clean_env):
    manifest = loaded(AS_WRITTEN / "merge_keys.yaml", clean_env).manifest
    assert dict(manifest.container.env) == {"OMP_NUM_THREADS": "4", "HF_HUB_OFFLINE": "0"}


@pytest.mark.parametrize("variant, shm, batch", [("small", "1g", 8), ("large", "16g", 8)])
def test_merge_keys_in_variants_over_a_profile_that_merges(clean_env, variant, shm, batch):
    manifest = loaded(AS_WRITTEN / "merge_layers.yaml", clean_env, variant).manifest
    assert manifest.container.shm_size == shm
    assert dict(manifest.container.env) == {"OMP_NUM_THREADS": "4", "TOKENIZERS_PARALLELISM": "false"}
    assert dict(manifest.entrypoints["train"].params) == {"batch_size": batch, "lr": "1e-4"}
    assert dict(manifest.entrypoints["train-again"].params) == {"batch_size": 2}


nested_override = """\
base: &base {params: {lr: 1}, precision: fp16}
train: &train
  <<: *base
  params: {lr: 2}
again:
  <<: *train
first: &first {batch: 1, only_first: yes}
second: &second {batch: 2, only_second: yes}
both:
  <<: [*first, *second]
"""


def test_merges_follow_the_merge_key_specification():
    doc, problems = parse_text(nested_override, "f.yaml")
    assert problems == []
    assert doc.data["again"] == {"params": {"lr": 2}, "precision": "fp16"}
    assert doc.data["both"] == {"batch": 1, "only_first": True, "only_second": True}


@pytest.mark.parametrize("text", [
    "base: &b {aa: 1, bb: 2}\nx:\n  <<: *b\n  bb: 3\n",
    "x: {<<: [{aa: 1}, {bb: 3}], bb: 4}\n",
    "t: &t {run: x, params: {aa: 1}}\ne:\n  params: {bb: 2}\n  <<: *t\n",
])
def test_where_pyyaml_reads_merges_by_the_specification_envctl_reads_them_alike(text):
    doc, problems = parse_text(text, "f.yaml")
    assert problems == []
    expected = yaml.safe_load(text)
    assert doc.data == expected
    for key, value in expected.items():  # and in the same key order, for `show`
        assert list(doc.data[key]) == list(value)


def test_two_keys_written_in_one_mapping_beside_a_merge_are_duplicates_located(clean_env, tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(textwrap.dedent("""\
        name: dup
        description: x
        device: {kind: cpu}
        image: {ref: "example/image:1"}
        entrypoints:
          train: &train {run: bash train.sh, params: {lr: "1e-4"}}
          tuned:
            <<: *train
            params: {lr: "5e-5"}
            params: {lr: "1e-5"}
    """))
    with pytest.raises(ManifestError) as caught:
        loaded(manifest, clean_env)
    assert [str(p) for p in caught.value.problems] == [
        f"{manifest}:10:5: entrypoints.tuned.params: duplicate key 'params' (first defined at line 9)"
    ]


def test_a_bad_value_inside_a_merged_mapping_is_located_where_it_is_written(clean_env, tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(textwrap.dedent("""\
        name: merged-error
        description: x
        device: {kind: cpu}
        image: {ref: "example/image:1"}
        x-limits: &limits
          ipc: host
          shm_size: lots
        container:
          <<: *limits
          network: none
    """))
    with pytest.raises(ManifestError) as caught:
        loaded(manifest, clean_env)
    assert [(p.line, p.path) for p in caught.value.problems] == [(7, "container.shm_size")]


@pytest.mark.parametrize("text, message", [
    ("a: !!python/object:os.system x\n", "1:4: a: YAML error: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"),
    ("a: !!int abc\n", "1:4: a: YAML error: 'abc' is not a valid int"),
    ("a: {<<: [{b: 1}, 3]}\n", "1:18: a: YAML error: `<<` merges mappings (an alias such as *defaults, or a list of them), not a scalar"),
])
def test_yaml_that_pyyaml_cannot_construct_is_a_located_problem_not_a_crash(text, message):
    _, problems = parse_text(text, "f.yaml")
    assert [str(p) for p in problems] == [f"f.yaml:{message}"]


def test_cli_validate_and_show_read_merge_keys(clean_env):
    done = envctl("validate", str(AS_WRITTEN / "merge_keys.yaml"), env=dict(clean_env))
    assert done.returncode == 0, done.stderr
    shown = envctl("show", str(AS_WRITTEN / "merge_keys.yaml"), env=dict(clean_env))
    assert shown.returncode == 0, shown.stderr
    data = yaml.safe_load(shown.stdout)
    assert data["entrypoints"]["train-long"]["params"] == {"lr": "5e-5", "epochs": 10}
    assert "x-defaults" not in data


def test_cli_validate_reports_a_duplicate_beside_a_merge_with_its_line(clean_env):
    broken = AS_WRITTEN.parent / "broken" / "merge_keys.yaml"
    done = envctl("validate", str(broken), env=dict(clean_env))
    assert done.returncode == 3
    assert f"error: {broken}:18:5: entrypoints.tuned.params: duplicate key 'params' (first defined at line 17)" in done.stderr.splitlines()
    assert "Traceback" not in done.stderr
