"""The shipped manifests: valid, faithful to their tutorials' pins, and planned exactly.

Each plan is computed on a simulated fresh host of the manifest's device family (8 boards, the
driver the manifest asks for, an engine with nothing on it) and compared with a golden file, so any change to what `up` would do
shows up as a reviewed diff.
"""

import re
from pathlib import Path

import pytest

import golden
import hostsim
from fake_engine import FakeEngine
from support import REPO
from envctl.hosts.local import LocalHost
from envctl.manifest.discovery import list_manifests, search_roots
from envctl.manifest.loader import load
from envctl.observe import observe
from envctl.plan import build_plan
from envctl.render import plan_json, plan_text

GOLDEN = REPO / "tests" / "golden" / "plans"

ENTRYPOINTS = {
    "chatglm3-mlu": {"infer", "web", "train"},
    "chatglm2-npu": {"preprocess", "ptune", "finetune", "evaluate"},
    "chatglm3-npu-mindformers": {"convert", "finetune", "finetune-multiturn", "predict", "merge"},
    "chatglm2-npu-fastchat": {"infer", "web", "train"},
    "chinese-alpaca2-mlu": {"infer", "eval", "sft", "merge", "pretrain", "merge-pretrain"},
    "chatglm-tiny-cpu": {"train", "infer"},
    # The README's worked example (issue 16): a lab's own pair, fine-tune then serve.
    "qwen25-llamafactory-910b": {"train", "export", "chat", "webui"},
    "qwen25-vllm-ascend-910b": {"serve", "ask"},
}

# What each seed tutorial pins, as it must appear in the plan.
PINS = {
    "chatglm3-mlu": [
        "mlu driver >=5.10.22", "yellow.hub.cambricon.com/pytorch/pytorch:v1.17.0-torch1.13.1-ubuntu20.04-py310",
        "pytorch-v1.17.0-torch1.13.1-ubuntu20.04-py310.tar.gz", "deepspeed_mlu-0.9.0-py3-none-any.whl",
        "git+https://github.com/THUDM/ChatGLM3@35f21dda9f567", "git+https://github.com/huggingface/transformers@v4.30.2",
        "hf://THUDM/chatglm3-6b@e46a14881eae", "ToolAlpaca", "flash_attn-2.1.1", "accelerate_mlu",
        "torch_gpu2mlu.py", "streamlit run main.py", "finetune_pt_multiturn.sh",
    ],
    "chatglm2-npu": [
        "877ef10d85c93ddfcfe945fcdc764393a52541b8", "hf://THUDM/chatglm2-6b@0ade0d38ac00258ae09450696315c2ff0b1faf12",
        "5c7c89930f0b70ea586d5db63f8e66477d5d9d9f", "deepspeed==0.9.2", "ModelZoo-PyTorch",
        "b3f119a008264b1cabd1", "preprocess.sh", "train.sh", "ds_train_fintune.sh", "evaluate_fintune.sh",
    ],
    "chatglm3-npu-mindformers": [
        "glm3_6b.ckpt", "tokenizer.model", "7cd5bc78bd6232d02764b60b33874bb2d63a0df0", "format_tool_alpaca.py",
        "tool_alpaca.jsonl", "transform_ckpt.py", "msrun_launcher.sh", "run_mindformer.py",
        "run_glm3_6b_finetune_2k_800T_A2_64G.yaml", "run_glm3_6b_multiturn_finetune_800T_A2_64G.yaml",
    ],
    "chatglm2-npu-fastchat": [
        "fastchat.serve.cli", "web.sh", "evol-instruct-chinese", "gradio==3.41.0", "full_shard auto_wrap", "fastchat/train/train.py",
    ],
    "chinese-alpaca2-mlu:13b": [
        "mlu driver >=5.10.13", "pytorch-v1.15.0-torch1.9-ubuntu18.04-py37", "cndsp-0.8.0",
        "84b4c3ef3689c3ef76016895ccaa1b28c56ef6a4", "Chinese-LLaMA-Alpaca-2_mlu", "open-codes-mlu",
        # The tutorial's ziqingyang/ repositories moved to hfl/; a note in the plan says so.
        "hf://hfl/chinese-alpaca-2-13b@", "hf://hfl/chinese-llama-2-13b@", "ziqingyang/chinese-alpaca-2-7b/13b",
    ],
    "chinese-alpaca2-mlu:7b": ["hf://hfl/chinese-alpaca-2-7b@", "hf://hfl/chinese-llama-2-7b@"],
    "chatglm-tiny-cpu:single": ["hf://envctl/tiny-glm@main", "hf://datasets/envctl/tiny-adgen@main", "--network none"],
    "chatglm-tiny-cpu:nodes": ["hf://envctl/tiny-glm@main", "--network host", "envctl-chatglm-tiny-cpu-nodes"],
    "qwen25-llamafactory-910b:7b": [
        "docker.io/hiyouga/llamafactory:0.9.4-npu-a2", "hf://Qwen/Qwen2.5-7B-Instruct@a09a35458c702b33eeacc393d103063234e8bc28",
        "llamafactory-cli train /opt/envctl/qwen25-llamafactory-910b/qwen25_lora_sft.yaml", "llamafactory-cli export",
        "llamafactory-cli webui", "HF_TOKEN (passed", "ASCEND_RT_VISIBLE_DEVICES=0,1,2,3", "/envctl/outputs/qwen25-7b/lora",
    ],
    "qwen25-llamafactory-910b:14b": ["hf://Qwen/Qwen2.5-14B-Instruct@cf98f3b3bbb457ad9e2bb7baf9a0125b6b88caa8",
                                     "/envctl/outputs/qwen25-14b/merged"],
    "qwen25-llamafactory-910b:modelscope": ["modelscope://Qwen/Qwen2.5-7B-Instruct@master"],
    "qwen25-vllm-ascend-910b:7b": [
        "quay.io/ascend/vllm-ascend:v0.13.0", "hf://Qwen/Qwen2.5-7B-Instruct@a09a35458c702b33eeacc393d103063234e8bc28",
        'vllm serve "$MODEL_PATH"', "serves :8000", "ASCEND_RT_VISIBLE_DEVICES=0",
    ],
    "qwen25-vllm-ascend-910b:14b": ["hf://Qwen/Qwen2.5-14B-Instruct@cf98f3b3bbb457ad9e2bb7baf9a0125b6b88caa8",
                                    "ENVCTL_NUM_CARDS=2"],
    "qwen25-vllm-ascend-910b:merged": ["QWEN25_MERGED", "SERVED_MODEL_NAME=qwen25-7b-lora"],
    "qwen25-vllm-ascend-910b:modelscope": ["modelscope://Qwen/Qwen2.5-7B-Instruct@master"],
}


def shipped_references(environ) -> list[str]:
    refs = []
    for found in list_manifests(search_roots(environ)):
        if found.root.origin != "shipped":
            continue
        loaded = load(found.path, environ=environ)
        variants = sorted(loaded.manifest.variants)
        refs += [f"{found.name}:{v}" for v in variants] or [found.name]
    return refs


def simulated_plan(reference: str, root: Path, environ):
    loaded = load(reference, environ=environ)
    device = loaded.manifest.device
    spec = device.driver or ""
    version = re.search(r"[0-9][0-9A-Za-z.]*", spec).group(0) if spec else "5.10.22"
    if device.kind == "mlu":
        # A server with 8 MLU370-X8 boards: each board holds two MLU devices.
        hostsim.mlu_host(root, cards=16, driver=version)
    elif device.kind == "npu":
        hostsim.npu_host(root, cards=8, version=version)
    else:
        root.mkdir(parents=True)
    # A fresh host: an engine with nothing on it, an empty cache. A pulled image is taken as
    # pulled already: for an image it lacks the plan asks the image's registry (quay.io, Docker
    # Hub), which no test reaches; tests/integration/test_worked_example.py plans those
    # manifests on an empty engine against a loopback registry instead.
    engine = FakeEngine()
    if loaded.manifest.image.pull:
        engine.add_image("sha256:" + "5e" * 32, loaded.manifest.image.ref)
    plan = build_plan(loaded, observe(LocalHost(str(root)), loaded, engine, environ=environ), environ=environ)
    return plan


def normalise(text: str, root: Path, config_hash: str) -> str:
    """Take out what depends on where the test runs: the temporary host root, the checkout, the
    config hash (which covers those paths; its behaviour is tested in test_plan.py), and the cache
    key of a path source (a hash of the absolute path, here inside the checkout; test_cache_keys.py)."""
    text = text.replace(config_hash, "<config-hash>").replace(config_hash[:12], "<config-hash>")
    text = re.sub(r"artifacts/file/[0-9a-f]{16}/", "artifacts/file/<path-hash>/", text)
    return text.replace(str(root), "<host-root>").replace(str(REPO), "<repo>")


def test_every_issue_manifest_is_shipped(clean_env):
    names = {r.split(":")[0] for r in shipped_references(dict(clean_env))}
    assert names >= set(ENTRYPOINTS)


@pytest.mark.parametrize("reference", sorted(PINS))
def test_plan_is_ready_on_a_matching_host_and_carries_the_tutorials_pins(reference, clean_env, tmp_path):
    plan = simulated_plan(reference, tmp_path / "root", dict(clean_env))
    assert plan.blockers == (), plan.blockers
    assert set(ENTRYPOINTS[plan.manifest]) <= {e.name for e in plan.entrypoints}
    text = plan_text(plan)
    missing = [pin for pin in PINS[reference] if pin not in text]
    assert missing == [], f"{reference}: pins not in the plan: {missing}"


@pytest.mark.parametrize("reference", sorted(PINS))
def test_plan_matches_its_golden_file(reference, clean_env, tmp_path):
    root = tmp_path / "root"
    plan = simulated_plan(reference, root, dict(clean_env))
    stem = reference.replace(":", "_")
    config_hash = plan.container.config_hash()
    golden.check(GOLDEN / f"{stem}.txt", normalise(plan_text(plan), root, config_hash))
    if reference == "chatglm3-mlu":
        golden.check(GOLDEN / f"{stem}.json", normalise(plan_json(plan), root, config_hash) + "\n")


def test_the_fastchat_web_launcher_starts_controller_worker_and_gradio():
    script = (REPO / "manifests" / "chatglm2-npu-fastchat" / "web.sh").read_text()
    for module in ("fastchat.serve.controller", "fastchat.serve.model_worker", "fastchat.serve.gradio_web_server"):
        assert module in script


def test_the_golden_set_covers_every_shipped_manifest_and_variant(clean_env):
    assert set(shipped_references(dict(clean_env))) == set(PINS)


def test_every_accelerator_manifest_passes_devices_explicitly_not_privileged(clean_env, tmp_path):
    for reference in PINS:
        plan = simulated_plan(reference, tmp_path / reference.replace(":", "_"), dict(clean_env))
        assert plan.container.privileged is False, reference
        if plan.devices.kind != "cpu":
            assert plan.container.devices, reference


def test_every_shipped_server_declares_when_it_is_ready(clean_env, tmp_path):
    """An entrypoint that serves a port and needs no terminal is a server `exec --detach` runs:
    each shipped one says how it answers once up (a GET path that answers 2xx, as the program
    serves it: streamlit's /_stcore/health, gradio's page, vLLM's /v1/models), on a port it serves."""
    servers = {}
    for reference in PINS:
        for entry in simulated_plan(reference, tmp_path / reference.replace(":", "_"), dict(clean_env)).entrypoints:
            if entry.ports and not entry.interactive:
                servers[f"{reference.split(':')[0]}/{entry.name}"] = entry.ready
    undeclared = sorted(name for name, ready in servers.items() if ready is None)
    assert undeclared == [], f"servers without ready: {undeclared}"
    declared = {name: (ready.port, ready.http) for name, ready in servers.items()}
    assert declared == {
        "chatglm3-mlu/web": (8501, "/_stcore/health"),
        "chatglm2-npu-fastchat/web": (7860, "/"),
        "chatglm2-npu-fastchat/official-web": (7860, "/"),
        "chinese-alpaca2-mlu/infer": (19324, "/"),
        "qwen25-llamafactory-910b/webui": (7860, "/"),
        "qwen25-vllm-ascend-910b/serve": (8000, "/v1/models"),
    }

