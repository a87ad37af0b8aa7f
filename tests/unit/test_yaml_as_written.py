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


# --- YAML 1.1 numbers -------------------------------------------------------------------------

BROKEN = AS_WRITTEN.parent / "broken"


def test_cli_validate_refuses_numbers_whose_text_yaml_changes_with_the_quoted_form(clean_env):
    done = envctl("validate", str(BROKEN / "yaml_numbers.yaml"), env=dict(clean_env))
    assert done.returncode == 3 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    where = f"error: {BROKEN}/yaml_numbers.yaml"
    for expected in [
        f'{where}:4:10: vars.torch: YAML 1.1 reads 1.10 as the number 1.1; write "1.10" (quoted) to keep the text 1.10',
        f'{where}:14:12: container.env.UMASK: YAML 1.1 reads 0022 as the octal number 18; write "0022" (quoted) to keep the text 0022',
        f'{where}:15:11: container.env.TIME: YAML 1.1 reads 22:22 as the base-60 number 1342; write "22:22" (quoted) to keep the text 22:22',
        f'{where}:30:11: container.ports[0]: YAML 1.1 reads 22:22 as the base-60 number 1342; write "22:22" (quoted) to keep the text 22:22',
        f'{where}:36:13: entrypoints.train.ports[0]: YAML 1.1 reads 0022 as the octal number 18; write 22 (or 18) without leading zeros',
        f'{where}:7:29: device.driver: expected text, got the number 5.1 (YAML\'s reading of 5.10); write "5.10"',
    ]:
        assert expected in lines
    # Plain numbers that read back as written, and scalars YAML 1.1 keeps as text (1e3, 0o17,
    # 1.10.0), are fine: exactly these paths are refused.
    assert {line.split(": ")[2] for line in lines} == {
        "vars.torch", "vars.flag", "device.driver", "image.build_args.PYTHON", "container.env.UMASK", "container.env.TIME",
        "container.env.BIG", "container.env.HALF", "container.env.PLUS", "container.env.NEG0", "container.env.INF",
        "container.env.NAN", "container.env.OCT", "container.env.SIXTY", "container.env.HEX", "container.ports[0]",
        "container.ulimits.nofile", "entrypoints.train.run[3]", "entrypoints.train.run[7]",
        "entrypoints.train.params.version", "entrypoints.train.params.fast", "entrypoints.train.ports[0]",
    }


@pytest.mark.parametrize("text, reading", [
    ("1.10", "the number 1.1"), ("3.10", "the number 3.1"), ("0022", "the octal number 18"), ("010", "the octal number 8"),
    ("22:22", "the base-60 number 1342"), ("1:20:30", "the base-60 number 4830"), ("0x1F", "the hexadecimal number 31"),
    ("1_000", "the number 1000"), (".5", "the number 0.5"), ("+1", "the number 1"), ("-0", "the number 0"),
    (".inf", "infinity"), (".nan", "not-a-number"), ("1.5e+3", "the number 1500.0"),
])
def test_every_yaml_1_1_number_whose_text_changes_is_refused_in_env_params_and_vars(clean_env, tmp_path, text, reading):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(textwrap.dedent(f"""\
        name: n
        description: x
        vars: {{v: {text}}}
        device: {{kind: cpu}}
        image: {{ref: "example/image:1"}}
        container: {{env: {{E: {text}}}}}
        entrypoints: {{e: {{run: x, params: {{p: {text}}}}}}}
    """))
    with pytest.raises(ManifestError) as caught:
        loaded(manifest, clean_env)
    message = f'YAML 1.1 reads {text} as {reading}; write "{text}" (quoted) to keep the text {text}'
    assert [(p.line, p.path, p.message) for p in caught.value.problems] == [
        (3, "vars.v", message), (6, "container.env.E", message), (7, "entrypoints.e.params.p", message)]


@pytest.mark.parametrize("text", ["1e3", "0o17", "1.10.0", "3", "0.5", "1.0", "-1", "100000"])
def test_scalars_that_read_back_as_written_are_accepted(clean_env, tmp_path, text):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"name: n\ndescription: x\ndevice: {{kind: cpu}}\nimage: {{ref: 'e/i:1'}}\ncontainer: {{env: {{E: {text}}}}}\n")
    assert loaded(manifest, clean_env).manifest.container.env["E"] == text


def test_a_value_replaced_by_a_later_layer_is_not_judged_by_the_earlier_text(clean_env, tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(textwrap.dedent("""\
        name: n
        description: x
        device: {kind: cpu}
        image: {ref: "example/image:1"}
        container: {env: {UMASK: 0022}}
        default_variant: fixed
        variants:
          fixed: {container: {env: {UMASK: "0022"}}}
    """))
    assert loaded(manifest, clean_env).manifest.container.env["UMASK"] == "0022"


def test_a_number_from_the_environment_keeps_its_text(clean_env, tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: n\ndescription: x\ndevice: {kind: cpu}\nimage: {ref: 'e/i:1'}\n"
                        "container: {env: {UMASK: '${UMASK}'}, shm_size: '${SHM}'}\n")
    manifest_data = loaded(manifest, dict(clean_env, UMASK="0022", SHM="1024")).manifest
    assert manifest_data.container.env["UMASK"] == "0022"  # not the integer 22
    assert manifest_data.container.shm_size == 1024  # a plain integer still becomes a number


def test_cli_show_prints_quoted_values_as_written(clean_env):
    shown = envctl("show", str(AS_WRITTEN / "numbers_quoted.yaml"), env=dict(clean_env))
    assert shown.returncode == 0, shown.stderr
    data = yaml.safe_load(shown.stdout)
    assert data["image"]["ref"] == "example/image:torch1.10-py3.10"
    assert data["container"]["env"] == {"UMASK": "0022", "TIME": "22:22", "VERSION": "1.10.0", "SCI": "1e3",
                                        "WORKERS": "4", "RATIO": "0.5"}
    assert data["container"]["user"] == "1000" and data["container"]["ports"] == ["2222:22", "8501"]
    assert data["image"]["build_args"] == {"PYTHON": "3.10", "CUDA": "12"}
    assert data["entrypoints"]["train"]["run"] == ["python", "train.py", "--lr", "0.00001", "--epochs", "3"]
    assert data["entrypoints"]["train"]["params"] == {"version": "3.10", "workers": 2, "cache": True}
