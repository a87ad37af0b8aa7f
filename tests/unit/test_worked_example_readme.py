"""The README's worked example says what the two manifests hold: each value it quotes (images,
pins, cards, ports, readiness, paths, variants) is read from the manifests as envctl resolves
them, so a change to either file that the README does not follow fails here."""

import re

import pytest

from envctl.manifest.loader import load
from support import REPO

FINETUNE = REPO / "manifests" / "qwen25-llamafactory-910b" / "manifest.yaml"
SERVE = REPO / "manifests" / "qwen25-vllm-ascend-910b" / "manifest.yaml"


@pytest.fixture(scope="module")
def section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("### Worked example: fine-tune with LLaMA-Factory, serve with vllm-ascend (Ascend 910B)")
    return text[start:text.index("\n## ", start)]


def _load(path, variant, vars=None, **environ):
    return load(f"{path}:{variant}" if variant else path, environ={"HOME": "/nonexistent", **environ}, vars=vars).manifest


def test_the_fine_tune_as_the_readme_quotes_it(section):
    m = _load(FINETUNE, None)
    assert m.variant == "7b" and "default_variant: 7b" in section
    assert f"ref: {m.image.ref}" in section and m.image.pull and "pull: true" in section
    assert f"model_rev: {m.vars['model_rev']}" in section and f"model_repo: {m.vars['model_repo']}" in section
    assert f"cards: {m.device.cards}" in section and m.device.cards == 4
    assert f"workdir: {m.container.workdir}" in section
    assert f"pass_env: [{', '.join(m.container.pass_env)}]" in section
    assert m.artifacts["qwen"].source == f"hf://{m.vars['model_repo']}@{m.vars['model_rev']}"
    webui = m.entrypoints["webui"]
    assert f"ports: [{webui.ports[0]}]" in section and f"ready: {{http: {webui.ready.http}, timeout: {webui.ready.timeout:g}}}" in section
    assert m.entrypoints["export"].cards == 1 and m.entrypoints["chat"].cards == 1 and m.entrypoints["chat"].interactive
    assert "export:  {cards: 1," in section and "chat:    {interactive: true, cards: 1," in section
    # The host path of the outputs: the workspace of the 7b environment, the outputs var below /envctl.
    merged = m.entrypoints["export"].params["export_dir"]
    host = f"~/.local/share/envctl/workspaces/{m.container_name}/{merged.removeprefix('/envctl/')}"
    assert host in section, host
    assert sorted(m.variants) == ["14b", "7b", "modelscope"]
    assert _load(FINETUNE, "14b+modelscope").artifacts["qwen"].source == "modelscope://Qwen/Qwen2.5-14B-Instruct@master"
    assert "qwen25-llamafactory-910b:14b+modelscope" in section


def test_the_server_as_the_readme_quotes_it(section):
    m = _load(SERVE, None)
    assert f"image: {{ref: {m.image.ref}, pull: true}}" in section
    assert f"cards: {m.device.cards}" in section and m.device.cards == 1
    serve = m.entrypoints["serve"]
    assert serve.ports == [8000] and f"ready: {{http: {serve.ready.http}, timeout: {serve.ready.timeout:g}}}" in section
    assert re.sub(r"\s+", " ", serve.run) in re.sub(r"\s+", " ", section)
    assert f"served_name: {m.vars['served_name']}" in section and f"port: {m.vars['port']}" in section
    assert _load(SERVE, "14b").device.cards == 2 and "device: {cards: 2}" in section
    merged = _load(SERVE, "14b+merged", QWEN25_MERGED="/data/merged")
    assert merged.artifacts["qwen"].source == "/data/merged" and merged.vars["served_name"] == "qwen25-14b-lora"
    assert 'served_name: "qwen25-${size}-lora"' in section and "${QWEN25_MERGED:-}" in section
    assert "qwen25-vllm-ascend-910b:merged" in section and ":14b+merged" in section
    # --var port moves the port served, the readiness and $PORT together, as the README says.
    moved = _load(SERVE, None, vars={"port": "8001"}).entrypoints["serve"]
    assert moved.ports == [8001] and moved.ready_port == 8001 and moved.params["port"] == 8001
    assert "--var port=8001" in section
