"""The Kubernetes exports of every shipped multi-node entrypoint, in every Kubernetes format:
compared with golden files (a change to what a cluster would run shows up as a reviewed diff)
and validated offline as `envctl export --check` does: built-in kinds strictly with
kubernetes-validate, custom kinds against their CRDs (../shared/k8s-crds/, as the engines
publish them), every pod template strictly as a PodTemplate. And --check itself: it catches a
typo under a CRD's pod template (which the CRD schema lets through), a wrong type, a missing
field, a custom kind without its CRD, each named by file, object and field, exit 1."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import golden
from support import REPO
from envctl.export import formats
from envctl.export.check import check_directory, pod_templates
from envctl.export.files import render, write_directory
from envctl.export.k8s_pod import dump
from envctl.export.model import build_export
from envctl.manifest.discovery import list_manifests, search_roots
from envctl.manifest.loader import load

GOLDEN = REPO / "tests" / "golden" / "exports"
CRDS = sorted((REPO.parent / "shared" / "k8s-crds").glob("*.yaml"))
KUBERNETES = ["volcano", "ascendjob", "pytorchjob", "k8s-job"]


def multi_node_entrypoints() -> list[tuple[str, str]]:
    """(reference, entrypoint) of every shipped entrypoint that declares nodes:, every variant."""
    environ = {"HOME": "/nonexistent"}
    found = []
    for manifest in list_manifests(search_roots(environ)):
        if not manifest.path.is_relative_to(REPO / "manifests"):
            continue
        variants = sorted(load(manifest.path, environ=environ).manifest.variants) or [None]
        for variant in variants:
            reference = f"{manifest.name}:{variant}" if variant else manifest.name
            loaded = load(reference, environ=environ)
            found += [(reference, name) for name, e in loaded.manifest.entrypoints.items() if e.nodes is not None]
    return sorted(found)


def fits(reference: str, fmt: str) -> bool:
    """An AscendJob is written for NPU (and CPU, to prove the wiring) environments only."""
    return fmt != "ascendjob" or "-mlu" not in reference


CASES = [(ref, entry, fmt) for ref, entry in multi_node_entrypoints() for fmt in KUBERNETES if fits(ref, fmt)]


def normalise(name: str, text: str) -> str:
    """Where the checkout lies, and a path source's cache key (a hash of its absolute path,
    tests/unit/test_cache_keys.py), out; the prelude's two modules by name (their bytes are
    tested in test_export_core.py)."""
    if name.endswith(".yaml"):
        objects = list(yaml.safe_load_all(text))
        for obj in objects:
            if obj["kind"] == "ConfigMap":
                obj["data"].update({"prelude.py": "<envctl/export/prelude.py>", "contract.py": "<envctl/nodes/contract.py>"})
        text = dump(objects)
    text = text.replace(str(REPO), "<repo>")
    return re.sub(r"artifacts/file/[0-9a-f]{16}/", "artifacts/file/<path-hash>/", text)


def test_the_golden_set_has_every_shipped_multi_node_entrypoint():
    entries = multi_node_entrypoints()
    assert ("chatglm-tiny-cpu:nodes", "train") in entries and ("chatglm3-npu-mindformers", "finetune") in entries
    assert len(entries) >= 7


@pytest.mark.parametrize("reference,entrypoint,fmt", CASES)
def test_export_matches_its_golden_files_and_passes_the_offline_check(reference, entrypoint, fmt, clean_env, tmp_path):
    export = build_export(load(reference, environ=dict(clean_env)), entrypoint, 2)
    files = render(export, formats.get(fmt))
    stem = GOLDEN / f"{reference.replace(':', '_')}-{entrypoint}" / fmt
    for name, text in sorted(files.items()):
        golden.check(stem / name, normalise(name, text))
    write_directory(tmp_path, files, fmt)
    assert check_directory(tmp_path, CRDS) == []


# An MLU environment per format, an NPU one for ascendjob (which refuses MLU): (reference, entrypoint, job)
SAMPLE = {fmt: ("chatglm3-mlu", "train", "chatglm3-mlu-train") for fmt in KUBERNETES}
SAMPLE["ascendjob"] = ("chatglm2-npu", "finetune", "chatglm2-npu-finetune")


def _exported(tmp_path, fmt="volcano", reference=None, entrypoint=None) -> Path:
    reference = reference or SAMPLE[fmt][0]
    entrypoint = entrypoint or SAMPLE[fmt][1]
    out = tmp_path / fmt
    done = subprocess.run([sys.executable, "-m", "envctl", "export", reference, "--entrypoint", entrypoint, "--nodes", "2",
                           "--format", fmt, "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def _check(out: Path, crds=CRDS) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envctl", "export", "--check", str(out),
                           *[a for c in crds for a in ("--crd", str(c))]], capture_output=True, text=True)


def _edit(out: Path, change) -> str:
    (path,) = out.glob("*.yaml")
    objects = list(yaml.safe_load_all(path.read_text()))
    change(objects)
    path.write_text("".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objects))
    return path.name


@pytest.mark.parametrize("fmt,template", [
    ("volcano", lambda job: job["spec"]["tasks"][0]["template"]),
    ("pytorchjob", lambda job: job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]),
    ("ascendjob", lambda job: job["spec"]["replicaSpecs"]["Master"]["template"]),
])
def test_a_typo_under_a_crd_pod_template_is_caught_though_the_crd_lets_it_through(fmt, template, clean_env, tmp_path):
    out = _exported(tmp_path, fmt)

    def typo(objects):
        container = template(objects[-1])["spec"]["containers"][0]
        container["resourcez"] = container.pop("volumeMounts")

    name = _edit(out, typo)
    done = _check(out)
    assert done.returncode == 1, done.stderr
    kind = {"volcano": "Job", "pytorchjob": "PyTorchJob", "ascendjob": "AscendJob"}[fmt]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr  # the CRD schema alone passes it: only the PodTemplate check sees it
    assert lines[0].startswith(f"error: {name}: {kind}/{SAMPLE[fmt][2]} (document 1): ") and "containers[0]" in lines[0]
    assert "'resourcez' was unexpected" in lines[0] and "(as a PodTemplate)" in lines[0], lines[0]


@pytest.mark.parametrize("fmt,change,field,words", [
    ("volcano", lambda o: o[-1]["spec"].__setitem__("minAvailable", "two"), "spec.minAvailable", "is not of type 'integer'"),
    ("pytorchjob", lambda o: o[-1]["spec"]["pytorchReplicaSpecs"]["Worker"].__setitem__("replicas", "1"),
     "spec.pytorchReplicaSpecs.Worker.replicas", "is not of type 'integer'"),
    ("ascendjob", lambda o: o[-1]["spec"]["replicaSpecs"]["Master"]["template"]["spec"]["containers"][0].pop("name"),
     "spec.replicaSpecs.Master.template.spec.containers[0]", "'name' is a required property"),
    ("volcano", lambda o: o[-1]["spec"]["tasks"][0]["template"]["spec"]["containers"][0].__setitem__("env", "A=1"),
     "spec.tasks[0].template.spec.containers[0].env", "is not of type 'array'"),
    ("k8s-job", lambda o: o[-1]["spec"].__setitem__("completions", "2"), "spec.completions", "is not of type"),
    ("k8s-job", lambda o: o[1]["spec"]["ports"][0].pop("port"), "spec.ports[0]", "'port' is a required property"),
    ("k8s-job", lambda o: o[-1]["spec"]["template"]["spec"]["containers"][0].__setitem__("imagePullPolicyy", "Never"),
     "spec.template.spec.containers[0]", "'imagePullPolicyy' was unexpected"),
])
def test_a_wrong_type_or_a_missing_field_names_file_object_and_field(fmt, change, field, words, clean_env, tmp_path):
    out = _exported(tmp_path, fmt)
    name = _edit(out, change)
    done = _check(out)
    assert done.returncode == 1, done.stderr
    assert any(line.startswith(f"error: {name}: ") and f": {field}: " in line and words in line
               for line in done.stderr.splitlines()), done.stderr


def test_a_custom_kind_without_its_crd_is_a_problem_not_a_pass(clean_env, tmp_path):
    out = _exported(tmp_path, "volcano")
    done = _check(out, crds=[])
    assert done.returncode == 1
    assert "no CRD for Job in batch.volcano.sh/v1alpha1: pass its CustomResourceDefinition with --crd FILE" in done.stderr


def test_export_check_validates_what_it_writes_and_a_clean_export_passes(clean_env, tmp_path):
    out = _exported(tmp_path, "k8s-job")
    done = _check(out, crds=[])  # built-in kinds only: no CRD needed
    assert done.returncode == 0 and "ok (k8s-job)" in done.stderr, done.stderr
    written = subprocess.run([sys.executable, "-m", "envctl", "export", "chatglm3-mlu", "--entrypoint", "train", "--nodes",
                              "2", "--format", "volcano", "-o", str(tmp_path / "checked"), "--check"],
                             capture_output=True, text=True)
    assert written.returncode == 1 and "no CRD for Job" in written.stderr  # it checked what it wrote


def test_check_refuses_a_directory_that_is_no_export(tmp_path):
    done = _check(tmp_path)
    assert done.returncode == 2 and "holds no .envctl-export marker" in done.stderr


@pytest.mark.parametrize("args,words", [
    (["chatglm3-mlu"], "give --entrypoint ENTRY and --nodes N"),
    # AscendJob is MindCluster's operator for Ascend NPUs: an MLU environment (and its neighbours,
    # every variant) is refused naming the formats that carry its cards, not written silently
    (["chatglm3-mlu", "-e", "train", "-n", "2", "--format", "ascendjob"],
     "an AscendJob (MindCluster's ascend-operator) runs on Ascend NPUs; chatglm3-mlu is a mlu environment"),
    (["chinese-alpaca2-mlu:7b", "-e", "sft", "-n", "2", "--format", "ascendjob"], "use --format volcano, pytorchjob, k8s-job"),
    (["chinese-alpaca2-mlu:13b", "-e", "pretrain", "-n", "2", "--format", "ascendjob", "-o", "/nonexistent/x"],
     "runs on Ascend NPUs"),
    (["chatglm3-mlu", "-e", "train", "-n", "2", "--format", "helm"], "--format helm: no such export format; formats: "),
    (["chatglm3-mlu", "-e", "infer", "-n", "2"], "does not say it can run on several nodes"),
    (["chatglm3-mlu", "-e", "train", "-n", "2", "--data-dir", "relative/dir"], "give an absolute path on the nodes"),
])
def test_bad_requests_exit_2_with_what_to_do(args, words, clean_env):
    done = subprocess.run([sys.executable, "-m", "envctl", "export", *args], capture_output=True, text=True)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_stdout_and_json_carry_the_same_files(clean_env):
    base = [sys.executable, "-m", "envctl", "export", "chatglm3-mlu", "-e", "train", "-n", "3", "-f", "k8s-job"]
    as_json = subprocess.run(base + ["--json"], capture_output=True, text=True)
    files = __import__("json").loads(as_json.stdout)
    assert set(files) == {"README.md", "chatglm3-mlu-train.yaml"}
    plain = subprocess.run(base, capture_output=True, text=True).stdout
    assert all(f"# ---- {name}\n{text}" in plain for name, text in files.items())
    job = list(yaml.safe_load_all(files["chatglm3-mlu-train.yaml"]))[-1]
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3


@pytest.mark.parametrize("fmt", KUBERNETES)
def test_a_claim_export_mounts_subpaths_of_one_pvc_and_passes_the_check(fmt, clean_env, tmp_path):
    reference, entrypoint, job = SAMPLE[fmt]
    export = build_export(load(reference, environ=dict(clean_env)), entrypoint, 2, claim="envctl-data",
                          data_dir="/data/envctl")
    files = render(export, formats.get(fmt))
    write_directory(tmp_path, files, fmt)
    assert check_directory(tmp_path, CRDS) == []
    pod = next(t for _path, t in pod_templates(list(yaml.safe_load_all(files[f"{job}.yaml"]))[-1]))
    claims = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"name": "envctl-data", "persistentVolumeClaim": {"claimName": "envctl-data"}}]
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/envctl"] == {"mountPath": "/envctl", "readOnly": False, "name": "envctl-data",
                                 "subPath": f"workspaces/envctl-{reference}"}
    driver = "/usr/bin/cnmon" if fmt != "ascendjob" else "/usr/local/bin/npu-smi"
    assert mounts[driver]["name"].startswith("host-")  # the driver stays the node's own


def test_o_never_overwrites_what_is_not_an_export_and_a_new_export_leaves_nothing_of_the_old(clean_env, tmp_path):
    """-o into a directory holding the user's files (a README.md of their own) writes nothing and
    exits 2; an earlier export is replaced whole: the files it wrote that the new one does not
    (node-2.sh of three nodes, another format's files) are removed, a file of the user's kept."""
    base = [sys.executable, "-m", "envctl", "export", "chatglm-tiny-cpu:nodes", "-e", "train"]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "README.md").write_text("my notes\n")
    done = subprocess.run(base + ["-n", "2", "-f", "shell", "-o", str(theirs)], capture_output=True, text=True)
    assert done.returncode == 2 and "not an earlier export; nothing written" in done.stderr, done.stderr
    assert sorted(p.name for p in theirs.iterdir()) == ["README.md"] and (theirs / "README.md").read_text() == "my notes\n"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    done = subprocess.run(base + ["-n", "2", "-o", str(a_file)], capture_output=True, text=True)
    assert done.returncode == 2 and "not a directory" in done.stderr and "Traceback" not in done.stderr

    out = tmp_path / "out"
    out.mkdir()  # empty: fine
    for nodes, fmt, expected in (("3", "shell", {"node-0.sh", "node-1.sh", "node-2.sh"}), ("2", "shell", {"node-0.sh", "node-1.sh"}),
                                 ("2", "volcano", {"chatglm-tiny-cpu-nodes-train.yaml"}), ("2", "slurm", {"job.sh"})):
        done = subprocess.run(base + ["-n", nodes, "-f", fmt, "-o", str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        (out / "kept.txt").write_text("mine\n")  # a file of the user's in an export is left alone
        assert {p.name for p in out.iterdir()} == expected | {"README.md", ".envctl-export", "kept.txt"}, (nodes, fmt)
        assert formats.format_of(out) == fmt


@pytest.mark.parametrize("fmt,change,field", [
    ("volcano", lambda o: o[-1]["spec"].__setitem__("minAvailabel", o[-1]["spec"].pop("minAvailable")), "spec.minAvailabel"),
    ("volcano", lambda o: o[-1]["spec"].__setitem__("schedulerNam", "volcano"), "spec.schedulerNam"),
    ("volcano", lambda o: o[-1]["spec"]["tasks"][0].__setitem__("replica", 2), "spec.tasks[0].replica"),
    ("pytorchjob", lambda o: o[-1]["spec"]["pytorchReplicaSpecs"]["Worker"].__setitem__("restartPolicyy", "Never"),
     "spec.pytorchReplicaSpecs.Worker.restartPolicyy"),
    ("ascendjob", lambda o: o[-1]["spec"]["runPolicy"]["schedulingPolicy"].__setitem__("queu", "default"),
     "spec.runPolicy.schedulingPolicy.queu"),
    ("ascendjob", lambda o: o[-1].__setitem__("sepc", {}), "sepc"),
    ("volcano", lambda o: o[-1]["metadata"].__setitem__("lables", {"a": "b"}), "metadata"),
    ("pytorchjob", lambda o: o[-1]["metadata"].__setitem__("nmae", "x"), "metadata"),
])
def test_an_unknown_field_of_a_custom_object_or_its_metadata_is_a_problem(fmt, change, field, clean_env, tmp_path):
    """A CRD's structural schema lets an unknown field through its jsonschema check, but the API
    server's strict field validation (kubectl apply's default since Kubernetes 1.27, KEP-2885)
    refuses it: a typo in the job's spec or metadata outside the pod template was an `ok`."""
    out = _exported(tmp_path, fmt)
    name = _edit(out, change)
    done = _check(out)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}: ") and f"document 1): {field}" in lines[0], done.stderr


def test_crds_as_kubectl_prints_them_a_list_and_a_version_not_served(clean_env, tmp_path):
    """`kubectl get crd A B -o yaml` prints one `kind: List` of CRDs (it was 'holds no
    CustomResourceDefinition'); a version with `served: false` is refused by the API server, so an
    object of it is a problem naming the CRD file."""
    crds = [yaml.safe_load(path.read_text()) for path in CRDS]
    listed = tmp_path / "crds.yaml"
    listed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": crds}))
    for fmt in ("volcano", "pytorchjob", "ascendjob"):
        done = _check(_exported(tmp_path, fmt), crds=[listed])
        assert done.returncode == 0 and f"ok ({fmt})" in done.stderr, done.stderr
    volcano = next(c for c in crds if c["spec"]["group"] == "batch.volcano.sh")
    served = dict(volcano["spec"]["versions"][0], name="v1beta1", storage=False)
    volcano["spec"]["versions"] = [dict(volcano["spec"]["versions"][0], served=False, storage=False), dict(served, storage=True)]
    several = tmp_path / "volcano.yaml"
    several.write_text(yaml.safe_dump(volcano))
    done = _check(tmp_path / "volcano", crds=[several])
    assert done.returncode == 1 and f"the CRD in {several} does not serve batch.volcano.sh/v1alpha1 (served: false)" in done.stderr


def test_ascendjob_refuses_cuda_and_says_a_cpu_job_proves_the_wiring_only(clean_env):
    """Neighbours of the MLU refusal: CUDA cards go to NVIDIA's device plugin, not MindCluster's
    operator (refused); a CPU AscendJob is written, for the wiring test, saying what it proves."""
    from dataclasses import replace

    from envctl.errors import EnvctlError

    cpu = build_export(load("chatglm-tiny-cpu:nodes", environ=dict(clean_env)), "train", 2)
    with pytest.raises(EnvctlError) as refused:
        render(replace(cpu, device_kind="cuda"), formats.get("ascendjob"))
    assert "runs on Ascend NPUs" in str(refused.value) and refused.value.exit_code == 2
    readme = render(cpu, formats.get("ascendjob"))["README.md"]
    assert "serves to prove the wiring" in readme
    npu = build_export(load("chatglm2-npu", environ=dict(clean_env)), "finetune", 2)
    assert "prove the wiring" not in render(npu, formats.get("ascendjob"))["README.md"]


@pytest.mark.parametrize("model,ring", [
    ("Atlas 800T A2 (Ascend 910B, 64 GB)", "ascend-910b"), ("Ascend 910B3", "ascend-910b"), ("Ascend910B4", "ascend-910b"),
    ("Atlas 900 A3 SuperPoD", "ascend-910b"), ("Atlas 800T A3 (Ascend 910C)", "ascend-910b"), ("Ascend 910-C", "ascend-910b"),
    ("Ascend 910", "ascend-910"), ("Ascend 910A", "ascend-910"), ("Atlas 800 9000 (Ascend 910 Pro)", "ascend-910"),
    ("Ascend 310P3", None), ("", None), (None, None),
])
def test_ring_controller_follows_the_server_type_and_an_unknown_one_is_left_to_the_user(model, ring, clean_env):
    """MindCluster's ring-controller.atlas: ascend-910b for Atlas A2 and A3 (910B, 910C),
    ascend-910 for the first 910 (sources in envctl/export/k8s_pod.py). A model not known here
    (none, a 310) gets no guessed label: the README says to set it and which value fits."""
    from dataclasses import replace

    from envctl.export.k8s_pod import ring_controller

    npu = build_export(load("chatglm2-npu", environ=dict(clean_env)), "finetune", 2)
    export = replace(npu, extra={**npu.extra, "device_model": model})
    assert ring_controller(export) == ring
    for fmt in ("volcano", "ascendjob"):
        files = render(export, formats.get(fmt))
        job = list(yaml.safe_load_all(files[f"{export.job}.yaml"]))[-1]
        assert job["metadata"]["labels"].get("ring-controller.atlas") == ring
        advice = "set the label ring-controller.atlas on the job and its pod templates: ascend-910b for Atlas A2"
        assert (advice in files["README.md"]) == (ring is None), files["README.md"]
    assert "ring-controller" not in render(export, formats.get("slurm"))["README.md"]
