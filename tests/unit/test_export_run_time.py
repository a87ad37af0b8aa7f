"""Exports of a manifest with `container.pass_env` and a pulled image (`image: {ref, pull: true}`),
in every format, through the command line:

- a passed value is in no exported file, though it is set in the environment and in the
  manifest's env file while exporting (the export reads neither); Kubernetes formats read each
  name from the Secret <job>-secrets (secretKeyRef), the README gives the kubectl command;
  slurm and shell pass `-e NAME` and warn for a name not set (run here with sh and bash);
- Kubernetes formats run the canonical ref pinned by digest with imagePullPolicy IfNotPresent
  (--pull-secret: imagePullSecrets), a tarball image keeps Never; an unpinned pulled image is
  said; a configured mirror is named in the README with the containerd hosts.toml the nodes
  need (a path prefix: override_path; Docker Hub's host-only mirror: none, server
  registry-1.docker.io), and the pods keep the canonical name;
- `--check` passes every Kubernetes export against the engines' published CRDs;
- the shipped worked example (qwen25-llamafactory-910b, with a multi-node form of its train
  entrypoint added, since the shipped one runs on one server) exported in every format and
  checked, its HF_TOKEN never written.

kubectl's --from-env-file reads "lines of key=val pairs ... (i.e. a Docker .env file)" (kubectl
create secret generic --help); containerd's hosts.toml: containerd docs/hosts.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import REPO

CRDS = sorted((REPO.parent / "shared" / "k8s-crds").glob("*.yaml"))
FORMATS = ["volcano", "ascendjob", "pytorchjob", "k8s-job", "slurm", "shell"]
KUBERNETES = [f for f in FORMATS if f not in ("slurm", "shell")]
DIGEST = "sha256:" + "cd" * 32
TOKEN = "hf_exportedNeverWritten7731"
FILE_TOKEN = "hf_fromTheEnvFile5519"

MANIFEST = """\
name: passed-pulled
description: a pulled image and a passed token, exported
device: {{kind: cpu}}
image:
  ref: {ref}
  pull: true
container:
  pass_env: [HF_TOKEN, VLLM_LOGGING_LEVEL]
  env_file: .env
entrypoints:
  train:
    run: python train.py --model "$${{MODEL:-x}}"
    nodes: {{launcher: none}}
"""


def _environ(tmp_path: Path, config: dict | None = None, **extra) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_") and k not in ("HF_TOKEN", "HF_ENDPOINT")}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config or {}))
    environ.update(HOME=str(tmp_path / "home"), ENVCTL_CONFIG=str(config_file),
                   DOCKER_HOST="unix:///nonexistent/docker.sock", **extra)
    return environ


def _export(manifest: Path, fmt: str, out: Path, environ: dict, *options: str, entrypoint: str = "train"):
    return subprocess.run([sys.executable, "-m", "envctl", "export", str(manifest), "--entrypoint", entrypoint,
                           "--nodes", "2", "--format", fmt, "-o", str(out), *options],
                          capture_output=True, text=True, env=environ, timeout=180)


def _check(out: Path, environ: dict):
    return subprocess.run([sys.executable, "-m", "envctl", "export", "--check", str(out),
                           *[word for crd in CRDS for word in ("--crd", str(crd))]],
                          capture_output=True, text=True, env=environ, timeout=180)


def _manifest(tmp_path: Path, ref: str) -> Path:
    path = tmp_path / "passed-pulled" / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MANIFEST.format(ref=ref))
    env_file = path.parent / ".env"
    env_file.write_text(f"HF_TOKEN={FILE_TOKEN}\nVLLM_LOGGING_LEVEL=DEBUG\n")
    env_file.chmod(0o600)
    return path


def _every_text(directory: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(directory.rglob("*")) if p.is_file())


def _containers(directory: Path) -> list[dict]:
    """Every container of every pod template in the export's YAML."""
    from envctl.export.check import pod_templates

    found = []
    for path in directory.glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            for _where, template in pod_templates(document or {}):
                found += [(template["spec"], c) for c in template["spec"]["containers"]]
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every format of the manifest, exported with the token in the environment and in the env
    file, through a mirror for quay.io, with --pull-secret for the Kubernetes formats."""
    tmp_path = tmp_path_factory.mktemp("passed-pulled")
    manifest = _manifest(tmp_path, f"quay.io/ascend/vllm-ascend:v0.7.3@{DIGEST}")
    environ = _environ(tmp_path, {"mirrors": {"registries": {"quay.io": "m.daocloud.io/quay.io"}}},
                       HF_TOKEN=TOKEN, VLLM_LOGGING_LEVEL="INFO")
    out = {}
    for fmt in FORMATS:
        options = ("--pull-secret", "quay-creds") if fmt in KUBERNETES else ()
        done = _export(manifest, fmt, tmp_path / fmt, environ, *options)
        assert done.returncode == 0, (fmt, done.stderr)
        out[fmt] = tmp_path / fmt
    return {"dirs": out, "environ": environ, "manifest": manifest}


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_passed_value_is_written_in_any_file(exported, fmt):
    text = _every_text(exported["dirs"][fmt])
    assert TOKEN not in text and FILE_TOKEN not in text
    assert "HF_TOKEN" in text  # by name only


@pytest.mark.parametrize("fmt", KUBERNETES)
def test_kubernetes_reads_each_passed_name_from_the_jobs_secret_and_pulls_the_pinned_image(exported, fmt):
    directory = exported["dirs"][fmt]
    containers = _containers(directory)
    assert containers
    job = "passed-pulled-train"
    for spec, container in containers:
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
                and "secretKeyRef" in e["valueFrom"]}
        assert refs["HF_TOKEN"] == {"name": f"{job}-secrets", "key": "HF_TOKEN"}
        assert refs["VLLM_LOGGING_LEVEL"] == {"name": f"{job}-secrets", "key": "VLLM_LOGGING_LEVEL"}
        assert "optional" not in refs["HF_TOKEN"]  # a missing Secret keeps the pod from starting, as the README says
        # The canonical name, not the mirror's: the nodes' runtime is given the mirror (README).
        assert container["image"] == f"quay.io/ascend/vllm-ascend:v0.7.3@{DIGEST}"
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert spec["imagePullSecrets"] == [{"name": "quay-creds"}]
    readme = (directory / "README.md").read_text()
    assert (f"`kubectl create secret generic {job}-secrets --from-literal=HF_TOKEN=\"$HF_TOKEN\" "
            f"--from-literal=VLLM_LOGGING_LEVEL=\"$VLLM_LOGGING_LEVEL\"`") in readme
    assert f"`kubectl create secret generic {job}-secrets --from-env-file=FILE`" in readme
    assert f"the manifest's env_file is {exported['manifest'].parent / '.env'}" in readme
    assert "kubectl create secret docker-registry quay-creds --docker-server=quay.io" in readme
    assert f"--format {fmt} --pull-secret quay-creds`" in readme  # the Written by command reproduces it
    assert "/etc/containerd/certs.d/quay.io/hosts.toml" in readme
    assert ('`server = "https://quay.io" / [host."https://m.daocloud.io/v2/quay.io"] / capabilities = ["pull", '
            '"resolve"] / override_path = true`') in readme
    assert "envctl save" not in readme and "ctr -n k8s.io images import" not in readme


@pytest.mark.parametrize("fmt", KUBERNETES)
def test_check_passes_every_kubernetes_export(exported, fmt):
    done = _check(exported["dirs"][fmt], exported["environ"])
    assert done.returncode == 0, done.stderr
    assert f"ok ({fmt})" in done.stdout + done.stderr


def test_without_pull_secret_no_image_pull_secrets_and_the_readme_says_how(tmp_path):
    manifest = _manifest(tmp_path, f"quay.io/ascend/vllm-ascend:v0.7.3@{DIGEST}")
    environ = _environ(tmp_path)
    done = _export(manifest, "k8s-job", tmp_path / "out", environ)
    assert done.returncode == 0, done.stderr
    for spec, _container in _containers(tmp_path / "out"):
        assert "imagePullSecrets" not in spec
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "export again with `--pull-secret NAME`" in readme
    assert "hosts.toml" not in readme  # no mirror configured here
    refused = _export(manifest, "k8s-job", tmp_path / "bad", environ, "--pull-secret", "Quay_Creds")
    assert refused.returncode == 2 and "--pull-secret 'Quay_Creds': not a Secret name" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_unpinned_pulled_image_is_said_and_run_by_its_tag(tmp_path):
    manifest = _manifest(tmp_path, "quay.io/ascend/vllm-ascend:v0.7.3")
    done = _export(manifest, "volcano", tmp_path / "out", _environ(tmp_path))
    assert done.returncode == 0, done.stderr
    (_spec, container), *_ = _containers(tmp_path / "out")
    assert container["image"] == "quay.io/ascend/vllm-ascend:v0.7.3"
    assert container["imagePullPolicy"] == "IfNotPresent"
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "is not pinned by digest: `envctl lock passed-pulled`" in readme


def test_docker_hubs_host_only_mirror_needs_no_path_override(tmp_path):
    manifest = _manifest(tmp_path, f"ascendai/cann:8.0.0@{DIGEST}")
    environ = _environ(tmp_path, {"mirrors": {"registries": {"docker.io": "docker.m.daocloud.io"}}})
    done = _export(manifest, "pytorchjob", tmp_path / "out", environ)
    assert done.returncode == 0, done.stderr
    (_spec, container), *_ = _containers(tmp_path / "out")
    assert container["image"] == f"docker.io/ascendai/cann:8.0.0@{DIGEST}"
    readme = (tmp_path / "out" / "README.md").read_text()
    assert ('/etc/containerd/certs.d/docker.io/hosts.toml' in readme and '`server = "https://registry-1.docker.io" / '
            '[host."https://docker.m.daocloud.io"] / capabilities = ["pull", "resolve"]`') in readme
    shell = _export(manifest, "shell", tmp_path / "shell", environ)
    assert shell.returncode == 0, shell.stderr
    script = (tmp_path / "shell" / "node-0.sh").read_text()
    assert "envctl_mirror=${ENVCTL_IMAGE_MIRROR-docker.m.daocloud.io}" in script
    assert "envctl_repo=docker.io/ascendai/cann" in script


def test_a_tarball_image_keeps_never_and_the_import_prerequisite(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("name: tarred\ndescription: d\ndevice: {kind: cpu}\nimage:\n  ref: envctl/tarred:1\n"
                    "  tarball: {source: /srv/tarred.tar}\nentrypoints:\n  train: {run: python t.py, nodes: {launcher: none}}\n")
    done = _export(path, "k8s-job", tmp_path / "out", _environ(tmp_path))
    assert done.returncode == 0, done.stderr
    (spec, container), *_ = _containers(tmp_path / "out")
    assert container["imagePullPolicy"] == "Never" and "imagePullSecrets" not in spec
    assert "ctr -n k8s.io images import" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.parametrize("fmt", ["slurm", "shell"])
def test_host_formats_pass_each_name_from_the_environment_and_say_where(exported, fmt):
    directory = exported["dirs"][fmt]
    scripts = sorted(directory.glob("*.sh"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        assert "    -e HF_TOKEN \\\n" in text and "    -e VLLM_LOGGING_LEVEL \\\n" in text
        assert '    ${ENVCTL_ENV_FILE:+--env-file "$ENVCTL_ENV_FILE"} \\\n' in text
    readme = (directory / "README.md").read_text()
    assert "HF_TOKEN, VLLM_LOGGING_LEVEL (container.pass_env) set in" in readme
    assert f"the manifest's env_file is {exported['manifest'].parent / '.env'}" in readme
    if fmt == "slurm":
        assert "--export=ALL, its default" in readme and "`envctl up passed-pulled --hosts NODES` pulls it" in readme
    else:
        script = (directory / "node-0.sh").read_text()
        assert "envctl_mirror=${ENVCTL_IMAGE_MIRROR-m.daocloud.io/quay.io}" in script
        assert f"envctl_pin={DIGEST}" in script and "ENVCTL_IMAGE_TARBALL" not in script
        assert "while it runs, `docker inspect` on that server shows the values" in readme  # docker run -e



@pytest.mark.parametrize("shell,fmt", [("sh", "shell"), ("bash", "slurm")])
def test_a_name_set_nowhere_is_a_warning_and_an_unreadable_env_file_refused(exported, tmp_path, shell, fmt):
    """The generated check lines run by the shell each format runs them in (the slurm task's
    function body, the shell script's head): a warning naming the unset name, none for a name
    set in the environment or in ENVCTL_ENV_FILE, exit 2 for an env file that cannot be read."""
    from envctl.export import passed
    text = (exported["dirs"][fmt] / ("job.sh" if fmt == "slurm" else "node-0.sh")).read_text()
    start = text.index('if [ -n "${ENVCTL_ENV_FILE:-}" ] && [ ! -r "$ENVCTL_ENV_FILE" ]')
    end = text.index("fi\n", text.index("VLLM_LOGGING_LEVEL (container.pass_env) is not set")) + 3
    checks = "\n".join(line.strip() for line in text[start:end].splitlines())
    checks = checks.replace("envctl_exit 2", "exit 2")
    assert passed.ENV_FILE_VARIABLE in checks
    base = {"PATH": os.environ["PATH"]}

    def run(**environ):
        return subprocess.run([shell, "-c", checks + "\necho checked"], capture_output=True, text=True,
                              env={**base, **environ}, timeout=30)

    nothing = run()
    assert nothing.returncode == 0 and "checked" in nothing.stdout
    assert "warning:" in nothing.stderr and "HF_TOKEN (container.pass_env) is not set" in nothing.stderr
    assert "VLLM_LOGGING_LEVEL (container.pass_env) is not set" in nothing.stderr
    set_here = run(HF_TOKEN="x", VLLM_LOGGING_LEVEL="")  # set, even empty: passed as set, as up passes it
    assert set_here.returncode == 0 and "is not set" not in set_here.stderr
    env_file = tmp_path / "tokens.env"
    env_file.write_text("  HF_TOKEN=from-file\n# VLLM_LOGGING_LEVEL=x\n")
    from_file = run(ENVCTL_ENV_FILE=str(env_file))
    assert "HF_TOKEN (container.pass_env) is not set" not in from_file.stderr
    assert "VLLM_LOGGING_LEVEL (container.pass_env) is not set" in from_file.stderr  # a comment sets nothing
    missing = run(ENVCTL_ENV_FILE=str(tmp_path / "absent.env"))
    assert missing.returncode == 2 and "cannot read ENVCTL_ENV_FILE=" in missing.stderr and "checked" not in missing.stdout


def test_the_shipped_worked_example_exports_in_every_format_and_checks(tmp_path):
    """qwen25-llamafactory-910b (its pulled LLaMA-Factory image and pass_env HF_TOKEN) with a
    multi-node form of train added (LLaMA-Factory's torchrun variables from envctl's contract).
    The shipped train runs on one server, which `export` refuses, clearly."""
    shipped = REPO / "manifests" / "qwen25-llamafactory-910b"
    environ = _environ(tmp_path, HF_TOKEN=TOKEN)
    refused = _export(shipped / "manifest.yaml", "volcano", tmp_path / "refused", environ)
    assert refused.returncode == 2 and "does not say it can run on several nodes" in refused.stderr
    copy = tmp_path / "qwen25-llamafactory-910b"
    copy.mkdir()
    for item in shipped.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    doc = yaml.safe_load((copy / "manifest.yaml").read_text())
    assert "HF_TOKEN" in doc["container"]["pass_env"] and doc["image"].get("pull") is True
    doc["entrypoints"]["train"]["nodes"] = {"launcher": "none", "run": (
        'FORCE_TORCHRUN=1 NNODES="$ENVCTL_NNODES" NODE_RANK="$ENVCTL_NODE_RANK" MASTER_ADDR="$ENVCTL_MASTER_ADDR" '
        'MASTER_PORT="$ENVCTL_MASTER_PORT" llamafactory-cli train qwen25_lora_sft.yaml')}
    (copy / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    ref = doc["image"]["ref"]
    for fmt in FORMATS:
        out = tmp_path / fmt
        done = _export(copy / "manifest.yaml", fmt, out, environ)
        assert done.returncode == 0, (fmt, done.stderr)
        assert TOKEN not in _every_text(out)
        if fmt in KUBERNETES:
            checked = _check(out, environ)
            assert checked.returncode == 0, (fmt, checked.stderr)
            (job_file,) = out.glob("*.yaml")
            assert job_file.stem == "qwen25-llamafactory-910b-7b-train"  # its default variant
            for _spec, container in _containers(out):
                assert container["image"].startswith(ref.split("@")[0]) and container["imagePullPolicy"] == "IfNotPresent"
                assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": f"{job_file.stem}-secrets",
                                                                           "key": "HF_TOKEN"}}} in container["env"]
            assert ("is not pinned by digest" in (out / "README.md").read_text()) == ("@sha256:" not in ref)
        else:
            assert "-e HF_TOKEN \\\n" in _every_text(out)


def test_a_secret_value_and_a_passed_name_are_read_alike_and_named_together(tmp_path):
    """A container.env value taken from a secret variable (read from the Secret since before
    pass_env) beside a pass_env name: one Secret holds both, one kubectl command creates it, and
    the host formats' README names both; neither value is written."""
    path = tmp_path / "both.yaml"
    path.write_text("name: both\ndescription: d\ndevice: {kind: cpu}\nimage: {ref: envctl/both:1}\n"
                    "container:\n  env: {HUB_API_KEY: '${HUB_API_KEY}'}\n  pass_env: [HF_TOKEN]\n"
                    "entrypoints:\n  train: {run: python t.py, nodes: {launcher: none}}\n")
    environ = _environ(tmp_path, HF_TOKEN=TOKEN, HUB_API_KEY="key_bakedValue8812")
    for fmt in ("k8s-job", "slurm", "shell"):
        done = _export(path, fmt, tmp_path / fmt, environ)
        assert done.returncode == 0, done.stderr
        text = _every_text(tmp_path / fmt)
        assert TOKEN not in text and "key_bakedValue8812" not in text
        readme = (tmp_path / fmt / "README.md").read_text()
        if fmt == "k8s-job":
            assert ('`kubectl create secret generic both-train-secrets --from-literal=HUB_API_KEY="$HUB_API_KEY" '
                    '--from-literal=HF_TOKEN="$HF_TOKEN"`') in readme
            (_spec, container), *_ = _containers(tmp_path / fmt)
            refs = [e["name"] for e in container["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
            assert refs == ["HUB_API_KEY", "HF_TOKEN"]
        else:
            assert "HUB_API_KEY, HF_TOKEN (container.pass_env, and values holding a secret) set in" in readme
            script = "".join(p.read_text() for p in (tmp_path / fmt).glob("*.sh"))
            assert "    -e HUB_API_KEY \\\n" in script and "    -e HF_TOKEN \\\n" in script
