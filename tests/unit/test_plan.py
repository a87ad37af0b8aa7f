"""Plans computed from small manifests on simulated hosts."""

import json
import textwrap
from pathlib import Path

import hostsim
from envctl.hosts.local import LocalHost
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
from envctl.observe import observe
from envctl.plan import Options, build_plan
from envctl.render import plan_json, plan_text

MLU_MANIFEST = """\
name: demo-mlu
description: a small MLU environment
device: {kind: mlu, cards: 2, driver: ">=5.10.22"}
image:
  ref: example/pytorch:v1
  tarball:
    source: ftp://lab:ftp-secret@ftp.example.com/docker/pytorch-v1.tar.gz
container:
  shm_size: 64g
  ipc: host
  network: host
  env:
    HF_TOKEN: ${HF_TOKEN:-}
    CNCL_MLULINK_DISABLE: 1
artifacts:
  weights:
    source: hf://THUDM/chatglm3-6b@e46a14881eae
    target: /workspace/models/chatglm3-6b
  code:
    source: git+https://github.com/THUDM/ChatGLM3@35f21dda9f567
    target: /workspace/ChatGLM3
    mode: rw
setup:
  - name: port
    run: python port.py -i ChatGLM3/
    workdir: /workspace
    uses: [code]
  - name: install
    run: [pip, install, -e, ChatGLM3_mlu]
    workdir: /workspace
entrypoints:
  infer:
    run: python demo.py
    params: {prompt: 你好}
  train:
    cards: 1
    run: bash train.sh
    params: {max_steps: 500, fp16: true}
"""


def make(tmp_path: Path, text: str = MLU_MANIFEST, environ=None, **options):
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    environ = dict(environ or {})
    environ.setdefault("ENVCTL_CACHE", "/cache")
    environ.setdefault("ENVCTL_WORKSPACE", "/ws")
    loaded = load(path, environ=environ, roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
    host = LocalHost(str(tmp_path / "root"))
    return build_plan(loaded, observe(host, loaded), Options(**options), environ)


def test_a_ready_plan_has_every_resolved_argument(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=4)
    plan = make(tmp_path)
    assert plan.blockers == () and plan.needs == ()
    assert plan.driver.status == "ok" and plan.driver.found == "5.10.22"
    spec = plan.container
    assert spec.cards == (0, 1)
    assert spec.env["MLU_VISIBLE_DEVICES"] == "0,1" and spec.env["CNCL_MLULINK_DISABLE"] == "1"
    assert (spec.shm_size, spec.ipc_mode, spec.network_mode, spec.privileged) == ("64g", "host", "host", False)
    mounts = {m.target: (m.source, m.read_only) for m in spec.mounts}
    assert mounts["/workspace/models/chatglm3-6b"] == ("/cache/artifacts/hf/THUDM/chatglm3-6b/e46a14881eae", True)
    assert mounts["/workspace/ChatGLM3"] == ("/ws/envctl-demo-mlu/artifacts/code", False)
    assert mounts["/envctl"] == ("/ws/envctl-demo-mlu", False)
    assert plan.setup[0].argv == ("/bin/sh", "-c", "python port.py -i ChatGLM3/")
    assert plan.setup[1].argv == ("pip", "install", "-e", "ChatGLM3_mlu")
    infer, train = plan.entrypoints
    assert infer.env == {"PROMPT": "你好", "ENVCTL_NUM_CARDS": "2"} and infer.cards == (0, 1)
    # The entrypoint's own cards narrow visibility, and launchers get the process count.
    assert train.env == {"MAX_STEPS": "500", "FP16": "true", "MLU_VISIBLE_DEVICES": "0", "ENVCTL_NUM_CARDS": "1"}
    assert train.cards == (0,)


def test_cards_option_overrides_the_manifest(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=8)
    plan = make(tmp_path, cards=(6, 7))
    assert plan.container.cards == (6, 7)
    assert [n.container_path for n in plan.container.devices if "dev" in n.container_path][1:] == [
        "/dev/cambricon_dev6", "/dev/cambricon_ipcm6", "/dev/cambricon_dev7", "/dev/cambricon_ipcm7",
    ]


def test_an_old_driver_blocks_with_required_found_and_file(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=2, driver="5.10.13")
    plan = make(tmp_path)
    assert plan.blockers == (
        f"host driver v5.10.13 does not satisfy >=5.10.22 required by demo-mlu "
        f"(read from {tmp_path}/root/proc/driver/cambricon/mlus/0000:39:00.0/information); "
        "install a matching driver, or pass --skip-driver-check to try anyway",
    )
    assert make(tmp_path, skip_driver_check=True).blockers == ()


def test_secrets_never_reach_the_rendered_plan(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=2)
    plan = make(tmp_path, environ={"HF_TOKEN": "hf_abcdefSECRET"})
    assert plan.container.env["HF_TOKEN"] == "hf_abcdefSECRET"  # the container gets it...
    for text in (plan_text(plan), plan_json(plan)):  # ...nobody reading the plan does
        assert "hf_abcdefSECRET" not in text
        assert "ftp-secret" not in text
        assert "HF_TOKEN=***" in text
    assert "ftp://lab:***@ftp.example.com/docker/pytorch-v1.tar.gz" in plan_text(plan)


def test_config_hash_follows_the_configuration(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=4)
    first = make(tmp_path).container.config_hash()
    assert make(tmp_path).container.config_hash() == first
    assert make(tmp_path, MLU_MANIFEST.replace("shm_size: 64g", "shm_size: 32g")).container.config_hash() != first
    assert make(tmp_path, cards=(2, 3)).container.config_hash() != first


def test_a_changed_setup_step_changes_its_hash_and_every_later_one(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=2)
    before = [s.step_hash for s in make(tmp_path).setup]
    after = [s.step_hash for s in make(tmp_path, MLU_MANIFEST.replace("port.py -i", "port.py --in")).setup]
    assert before[0] != after[0] and before[1] != after[1]
    moved = [s.step_hash for s in make(tmp_path, MLU_MANIFEST.replace("35f21dda9f567", "0123456789abc")).setup]
    assert moved[0] != before[0], "a step re-runs when an artifact it uses changes"


def test_missing_cards_and_tarball_source_are_reported(tmp_path):
    (tmp_path / "root").mkdir()
    text = MLU_MANIFEST.replace(
        "source: ftp://lab:ftp-secret@ftp.example.com/docker/pytorch-v1.tar.gz",
        "source: ${PYTORCH_TARBALL:-}\n    obtain: ask the vendor for pytorch-v1.tar.gz",
    )
    plan = make(tmp_path, text)
    assert plan.needs == ("image example/pytorch:v1: ask the vendor for pytorch-v1.tar.gz (unless the engine has the "
                          "image: it could not be asked)",)
    assert not plan.ready
    assert f"no Cambricon MLU cards found under {tmp_path}/root" in plan.blockers


def test_plan_json_carries_create_args_labels_and_readiness(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=2)
    data = json.loads(plan_json(make(tmp_path)))
    assert data["ready"] is False and data["blockers"] == [] and data["needs"] == []  # the engine was not asked
    assert data["container"]["labels"]["io.envctl.manifest"] == "demo-mlu"
    assert data["container"]["labels"]["io.envctl.config-hash"] == data["container"]["config_hash"]
    args = data["container"]["create_args"]
    assert args[:4] == ["docker", "create", "--name", "envctl-demo-mlu"]
    assert f"{tmp_path}/root/dev/cambricon_dev1:/dev/cambricon_dev1:rwm" in args
    assert "--privileged" not in args


def test_privileged_only_when_the_manifest_asks(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=2)
    assert "--privileged" not in make(tmp_path).container.cli_args()
    asked = make(tmp_path, MLU_MANIFEST.replace("  network: host\n", "  network: host\n  privileged: true\n"))
    assert "--privileged" in asked.container.cli_args() and asked.container.api_kwargs()["privileged"] is True


def test_cpu_manifest_rejects_cards(tmp_path):
    text = textwrap.dedent("""\
        name: c
        description: cpu
        device: {kind: cpu}
        image: {ref: x}
    """)
    (tmp_path / "root").mkdir()
    assert make(tmp_path, text).blockers == ()
    assert make(tmp_path, text, cards=(0,)).blockers == ("a cpu environment has no cards: drop --cards",)


SERVERS_MANIFEST = """\
name: servers
description: entrypoints that serve, with and without readiness
device: {kind: cpu}
image: {ref: example/server:v1}
vars: {port: 8501}
default_variant: loud
variants:
  loud: {}
  quiet:
    entrypoints: {web: {ready: null}}
entrypoints:
  web:
    ports: ["${port}"]
    ready: {http: /_stcore/health}
    params: {port: "${port}"}
    run: streamlit run main.py --server.port "$PORT"
  api:
    ports: [8000, 9000]
    ready: {port: 9000, timeout: 30}
    run: [python3, -m, api]
  metrics:
    ready: {port: 9100, http: /metrics, timeout: 2.5}
    run: [exporter]
  demo:
    ports: [7860]
    run: python web_demo.py
  chat:
    interactive: true
    ports: [7861]
    run: python cli_demo.py
  train:
    run: bash train.sh
"""


def _server_plan(tmp_path, reference=None, **loading):
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SERVERS_MANIFEST)
    (tmp_path / "root").mkdir(exist_ok=True)
    environ = {"ENVCTL_CACHE": "/cache", "ENVCTL_WORKSPACE": "/ws"}
    loaded = load(path, environ=environ, roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path), **loading)
    return build_plan(loaded, observe(LocalHost(str(tmp_path / "root")), loaded), Options(), environ)


def _entry_lines(text: str, name: str) -> list[str]:
    """An entrypoint's lines in the plan's text: its header and the indented lines under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"   {name}"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("         ")), len(lines))
    return lines[start:end]


def test_the_plan_says_which_entrypoints_serve_and_when_each_is_ready(tmp_path):
    text = plan_text(_server_plan(tmp_path))
    web = _entry_lines(text, "web")
    assert web[0] == "   web  (serves :8501)"
    assert web[1] == ("         ready when GET /_stcore/health answers 2xx on port 8501, within 120 s: "
                      "envctl exec web --detach (envctl stop web ends it)")
    # ready.port names one of several ports; the default timeout is not the one said.
    assert _entry_lines(text, "api")[:2] == [
        "   api  (serves :8000, :9000)",
        "         ready when port 9000 answers, within 30 s: envctl exec api --detach (envctl stop api ends it)"]
    # A readiness port the entrypoint does not list among its ports, a fractional timeout.
    assert _entry_lines(text, "metrics")[:2] == [
        "   metrics",
        "         ready when GET /metrics answers 2xx on port 9100, within 2.5 s: envctl exec metrics --detach "
        "(envctl stop metrics ends it)"]
    # A server without readiness is said to be one; an interactive one and a job are not servers.
    assert _entry_lines(text, "demo")[1] == (
        "         declares no readiness (ready: in the manifest): envctl exec demo --detach returns once it has "
        "started, not once it answers")
    assert not any("ready" in line or "--detach" in line for line in _entry_lines(text, "chat") + _entry_lines(text, "train"))


def test_plan_json_carries_each_entrypoints_ports_and_readiness(tmp_path):
    data = json.loads(plan_json(_server_plan(tmp_path)))
    entries = {e["name"]: e for e in data["entrypoints"]}
    assert entries["web"]["ports"] == [8501]
    assert entries["web"]["ready"] == {"port": 8501, "http": "/_stcore/health", "timeout": 120}
    assert entries["api"]["ports"] == [8000, 9000]
    assert entries["api"]["ready"] == {"port": 9000, "http": None, "timeout": 30}
    assert entries["metrics"]["ports"] == [] and entries["metrics"]["ready"]["port"] == 9100
    assert entries["demo"]["ready"] is None and entries["train"]["ready"] is None
    assert isinstance(data["ready"], bool)  # the plan's own readiness is another key, unchanged


def test_readiness_in_the_plan_follows_var_and_variant(tmp_path):
    moved = _server_plan(tmp_path, vars={"port": "8600"})
    web = next(e for e in moved.entrypoints if e.name == "web")
    assert web.ports == (8600,) and web.ready.port == 8600 and web.params["PORT"] == "8600"
    assert "ready when GET /_stcore/health answers 2xx on port 8600" in plan_text(moved)
    # A variant removes the inherited readiness with null: the plan says it declares none.
    quiet = _server_plan(tmp_path, variant="quiet")
    assert next(e for e in quiet.entrypoints if e.name == "web").ready is None
    assert "declares no readiness (ready: in the manifest): envctl exec web --detach" in plan_text(quiet)
