"""`nodes:` in a manifest: the loader refuses a multi-node command pinned to one node, at the
pin's own file:line, and the shipped training entrypoints declare their launchers."""

import textwrap

import pytest

from envctl.errors import ManifestError
from envctl.manifest.loader import load, load_file

HEAD = """\
name: nodes-demo
description: multi-node checks
device: {kind: cpu}
image: {ref: "busybox:1.36"}
entrypoints:
"""


def load_text(tmp_path, entrypoints):
    path = tmp_path / "manifest.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(entrypoints), "  "))
    return load(path, environ={}, roots=[])


def problems(tmp_path, entrypoints):
    with pytest.raises(ManifestError) as caught:
        load_text(tmp_path, entrypoints)
    return [(p.line, p.column, p.path, p.message) for p in caught.value.problems]


def test_a_pin_inside_a_literal_block_is_reported_at_its_own_line(tmp_path):
    found = problems(tmp_path, """\
        train:
          run: |
            set -e
            MASTER_PORT=$(shuf -n 1 -i 10000-65535)
            torchrun --nnodes=1 --master_port "$MASTER_PORT" train.py
          nodes: {launcher: torchrun}
    """)
    assert [(line, column, path) for line, column, path, _ in found] == [(10, 7, "entrypoints.train.run")] * 2
    assert "--nnodes is '1'" in found[0][3] + found[1][3] and "random on each node" in found[0][3] + found[1][3]


def test_the_multi_node_command_is_checked_not_the_single_node_one(tmp_path):
    found = problems(tmp_path, """\
        train:
          run: torchrun --standalone train.py
          nodes:
            launcher: torchrun
            run: torchrun --nnodes=2 --standalone train.py
    """)
    assert [(line, path) for line, _, path, _ in found] == [(10, "entrypoints.train.nodes.run")] * 2


def test_an_argument_list_is_reported_at_the_item(tmp_path):
    found = problems(tmp_path, """\
        train:
          run: [torchrun, --nnodes, "1", train.py]
          nodes: {launcher: torchrun}
    """)
    assert [(line, path) for line, _, path, _ in found] == [(7, "entrypoints.train.run[2]")]


def test_unknown_launcher_and_key_are_schema_problems(tmp_path):
    found = problems(tmp_path, """\
        train:
          run: torchrun train.py
          nodes: {launcher: torchrn, max: 4}
    """)
    messages = " | ".join(message for _, _, _, message in found)
    assert "'torchrn' is not one of torchrun" in messages and "did you mean 'torchrun'" in messages
    assert "unknown key 'max'" in messages


def test_a_command_fit_for_several_nodes_loads(tmp_path):
    loaded = load_text(tmp_path, """\
        train:
          run: torchrun --nproc_per_node 2 train.py
          nodes: {launcher: torchrun}
        check:
          run: python check.py
          nodes: {launcher: none}
    """)
    assert loaded.manifest.entrypoints["train"].nodes.launcher == "torchrun"
    assert loaded.manifest.entrypoints["check"].nodes.run is None


SHIPPED = [
    ("chatglm3-mlu", "train", "torch.distributed.launch", True),
    ("chatglm2-npu", "finetune", "deepspeed", True),
    ("chinese-alpaca2-mlu", "sft", "torch.distributed.launch", False),
    ("chinese-alpaca2-mlu", "pretrain", "torch.distributed.launch", False),
    ("chatglm2-npu-fastchat", "train", "torchrun", False),
    ("chatglm3-npu-mindformers", "finetune", "msrun", True),
]


@pytest.mark.parametrize("name, entrypoint, launcher, own_command", SHIPPED)
def test_shipped_training_entrypoints_declare_their_launcher(name, entrypoint, launcher, own_command, clean_env):
    entry = load(name, environ=clean_env).manifest.entrypoints[entrypoint]
    assert entry.nodes.launcher == launcher
    # A multi-node command of its own only where the tutorial's command is pinned to one node.
    assert (entry.nodes.run is not None) == own_command
    if own_command:
        assert entry.nodes.run != entry.run
