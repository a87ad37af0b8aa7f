"""The command line as a user runs it: exit codes, stderr, no tracebacks."""

import json
import os
import subprocess
import sys
import textwrap

import jsonschema
import yaml

from support import REPO

BROKEN = REPO / "tests" / "fixtures" / "broken"


def envctl(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env=env or os.environ, cwd=cwd, timeout=60)

def test_validate_invalid_manifest_exits_3_with_located_errors_and_no_traceback(clean_env):
    done = envctl("validate", str(BROKEN / "typo_keys.yaml"))
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.splitlines()[0] == (
        f"error: {BROKEN}/typo_keys.yaml:9:3: container.shm_szie: unknown key 'shm_szie' (did you mean 'shm_size'?)"
    )
    assert "Traceback" not in done.stderr

def test_yaml_syntax_error_is_located(clean_env):
    done = envctl("validate", str(BROKEN / "yaml_syntax.yaml"))
    assert done.returncode == 3 and "yaml_syntax.yaml:5:3: YAML syntax error" in done.stderr

def test_unknown_name_suggests_a_close_one(clean_env):
    done = envctl("plan", "chatglm3-mul")
    assert done.returncode == 4
    assert done.stderr.splitlines()[0] == "error: no manifest named 'chatglm3-mul' (did you mean 'chatglm3-mlu'?)"
    assert done.stderr.splitlines()[1].startswith("hint:  looked in ")

def test_bad_cards_option_is_a_usage_error(clean_env):
    done = envctl("plan", "chatglm-tiny-cpu", "--cards", "0,x")
    assert done.returncode == 2
    assert done.stderr == "error: --cards '0,x': 'x' is not a card index or a range (write e.g. 0,1 or 0-3 or 0,2-3)\n"

def test_plan_on_a_host_without_cards_exits_5_and_lists_blockers(clean_env, tmp_path):
    env = dict(clean_env, ENVCTL_HOST_ROOT=str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    done = envctl("plan", "chatglm3-mlu", env=env)
    assert done.returncode == 5
    assert f"  - no Cambricon MLU cards found under {tmp_path}/empty" in done.stdout

def test_list_finds_user_manifests_first_and_marks_shadowed(clean_env, tmp_path):
    extra = tmp_path / "extra"
    (extra / "chatglm-tiny-cpu").mkdir(parents=True)
    (extra / "chatglm-tiny-cpu" / "manifest.yaml").write_text(textwrap.dedent("""\
        name: chatglm-tiny-cpu
        description: my own copy
        device: {kind: cpu}
        image: {ref: mine}
    """))
    env = dict(clean_env, ENVCTL_MANIFEST_PATH=str(extra))
    rows = json.loads(envctl("list", "--json", env=env).stdout)
    mine = [r for r in rows if r["name"] == "chatglm-tiny-cpu"]
    assert mine[0]["origin"] == "ENVCTL_MANIFEST_PATH" and mine[0]["description"] == "my own copy"
    assert mine[1]["origin"] == "shipped" and mine[1]["shadowed_by"] == str(extra / "chatglm-tiny-cpu" / "manifest.yaml")
    assert json.loads(envctl("plan", "chatglm-tiny-cpu", "--json", env=env).stdout)["image"]["ref"] == "mine"

def test_show_expands_variables_and_redacts_secrets(clean_env, tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(textwrap.dedent("""\
        name: s
        description: secrets
        vars: {root: /workspace}
        device: {kind: cpu}
        image: {ref: x}
        container:
          workdir: ${root}/s
          env: {HF_TOKEN: "${HF_TOKEN}", HF_ENDPOINT: "${HF_ENDPOINT:-https://hf-mirror.com}"}
    """))
    done = envctl("show", str(manifest), env=dict(clean_env, HF_TOKEN="hf_topsecret"))
    assert done.returncode == 0, done.stderr
    assert "hf_topsecret" not in done.stdout
    assert "HF_TOKEN: '***'" in done.stdout and "workdir: /workspace/s" in done.stdout
    assert "HF_ENDPOINT: https://hf-mirror.com" in done.stdout

def test_schema_is_valid_json_schema_and_accepts_every_resolved_shipped_manifest(clean_env):
    schema = json.loads(envctl("schema").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    rows = json.loads(envctl("list", "--json").stdout)
    shipped = [r for r in rows if r["origin"] == "shipped"]
    assert len(shipped) >= 6
    for row in shipped:
        names = [f"{row['name']}:{v}" for v in row["variants"]] or [row["name"]]
        for name in names:

            resolved = yaml.safe_load(envctl("show", name).stdout)
            errors = list(validator.iter_errors(resolved))
            assert errors == [], (name, [e.message for e in errors])
    # ...and the schema rejects what the loader rejects.
    assert list(validator.iter_errors({"name": "x", "description": "d", "device": {"kind": "mlv"}, "image": {"ref": "x"}}))

def test_internal_errors_do_not_print_a_traceback_unless_asked(clean_env, tmp_path):
    # A manifest path that is a directory without manifest.yaml is a user error, not a bug.
    (tmp_path / "empty-bundle").mkdir()
    done = envctl("plan", str(tmp_path / "empty-bundle"))
    assert done.returncode == 4 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: no manifest file at {tmp_path}/empty-bundle/manifest.yaml"


def test_plan_chatglm3_mlu_on_a_simulated_two_card_host(clean_env, tmp_path):
    import hostsim

    root = hostsim.mlu_host(tmp_path / "host", cards=2, commu=True)
    done = envctl("plan", "chatglm3-mlu", "--json", env=dict(clean_env, ENVCTL_HOST_ROOT=str(root)))
    # Not ready (exit 5): the image and two artifacts without a source are still to provide.
    assert done.returncode == 5, done.stdout + done.stderr
    plan = json.loads(done.stdout)
    assert plan["ready"] is False and plan["summary"]["blockers"] == 0
    assert [d["container_path"] for d in plan["container"]["devices"]] == [
        "/dev/cambricon_ctl", "/dev/cambricon_dev0", "/dev/cambricon_ipcm0", "/dev/commu0",
        "/dev/cambricon_dev1", "/dev/cambricon_ipcm1", "/dev/commu1",
    ]
    assert {"source": f"{root}/usr/bin/cnmon", "target": "/usr/bin/cnmon", "read_only": True} in plan["container"]["mounts"]
    assert plan["container"]["env"]["MLU_VISIBLE_DEVICES"] == "0,1"
    assert plan["driver"] == {"kind": "mlu", "required": ">=5.10.22", "found": "5.10.22", "status": "ok",
                              "source": f"{root}/proc/driver/cambricon/mlus/0000:39:00.0/information"}


def test_plan_chatglm2_npu_on_a_simulated_eight_card_host(clean_env, tmp_path):
    import hostsim

    root = hostsim.npu_host(tmp_path / "host", cards=8)
    done = envctl("plan", "chatglm2-npu", "--json", "--cards", "0,1,2,3,4,5,6,7",
                  env=dict(clean_env, ENVCTL_HOST_ROOT=str(root)))
    # Not ready (exit 5): the image tarball is still to provide.
    assert done.returncode == 5, done.stdout + done.stderr
    plan = json.loads(done.stdout)
    assert plan["ready"] is False
    nodes = [d["container_path"] for d in plan["container"]["devices"]]
    assert nodes == [f"/dev/davinci{i}" for i in range(8)] + ["/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"]
    targets = {m["target"]: m["read_only"] for m in plan["container"]["mounts"]}
    for path in ("/usr/local/dcmi", "/usr/local/bin/npu-smi", "/usr/local/Ascend/driver/lib64",
                 "/usr/local/Ascend/driver/version.info", "/etc/ascend_install.info"):
        assert targets[path] is True
    assert plan["container"]["env"]["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
    assert "ASCEND_VISIBLE_DEVICES" not in plan["container"]["env"]
