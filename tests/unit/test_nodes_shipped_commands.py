"""The shipped multi-node commands, run by a real sh with each node's contract, start exactly the
per-node launcher command of envctl.nodes.launchers (the research's launcher table). The
launchers themselves (torch, DeepSpeed, msrun, MindFormers' msrun_launcher.sh) are small stand-ins
on PATH that record the arguments and environment they were started with."""

import json
import os
import stat
import subprocess

import pytest

from envctl.manifest.loader import load
from envctl.nodes.contract import Node, build_contract
from envctl.nodes.launchers import default_port, msrun_launcher_arguments, node_command

RECORDER = """#!/bin/sh
exec "$RECORDER_PYTHON" -c 'import json, os, sys
with open(os.environ["RECORD"], "a") as out:
    out.write(json.dumps({"argv": [os.path.basename(sys.argv[1])] + sys.argv[2:], "env": dict(os.environ)}) + "\\n")' "$0" "$@"
"""


def stand_ins(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "python3", "torchrun", "deepspeed", "msrun", "cp", "ls"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "msrun_launcher.sh").write_text(RECORDER)
    (tmp_path / "scripts" / "msrun_launcher.sh").chmod(0o755)
    (tmp_path / "env_npu.sh").write_text("")
    return bin_dir


def run_node(loaded, entrypoint, contract, rank, tmp_path, bin_dir):
    entry = loaded.manifest.entrypoints[entrypoint]
    params = {key.upper(): str(value) for key, value in entry.params.items()}
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD": str(tmp_path / f"record{rank}"),
           "RECORDER_PYTHON": subprocess.sys.executable, "ENVCTL_NUM_CARDS": str(contract.nproc_per_node),
           **entry.env, **params, **contract.env(rank)}  # the contract over params (MASTER_ADDR, MASTER_PORT)
    command = entry.nodes.run if entry.nodes.run is not None else entry.run
    subprocess.run(["sh", "-c", command], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    records = [json.loads(line) for line in (tmp_path / f"record{rank}").read_text().splitlines()]
    return [r for r in records if r["argv"][0] not in ("cp", "ls")][-1]


def flags(argv):
    """--name value and --name=value pairs of an argument list."""
    found = {}
    for i, item in enumerate(argv):
        if item.startswith("--"):
            name, eq, value = item.partition("=")
            found[name] = value if eq else (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None)
    return found


CASES = [
    ("chatglm3-mlu", "train", "torch.distributed.launch", 2),
    ("chatglm2-npu", "finetune", "deepspeed", 8),
    ("chinese-alpaca2-mlu:13b", "sft", "torch.distributed.launch", 16),
    ("chinese-alpaca2-mlu:13b", "pretrain", "torch.distributed.launch", 16),
    ("chatglm2-npu-fastchat", "train", "torchrun", 2),
    ("chatglm3-npu-mindformers", "finetune", "msrun", 8),
    ("chatglm-tiny-cpu:nodes", "train", "torchrun", 1),  # the CPU reference workflow across nodes
]


@pytest.mark.parametrize("name, entrypoint, launcher, cards", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_node_starts_the_launchers_per_node_command(name, entrypoint, launcher, cards, clean_env, tmp_path):
    loaded = load(name, environ=clean_env)
    entry = loaded.manifest.entrypoints[entrypoint]
    assert entry.nodes.launcher == launcher
    port = default_port(launcher, entry.params)
    contract = build_contract([Node("lab1", "10.213.1.11", cards, "eth0"), Node("lab2", "10.213.1.12", cards, "eth0")],
                              port, f"{entrypoint}-20261101-120000-ab12", loaded.manifest.device.kind)
    bin_dir = stand_ins(tmp_path)
    for rank in (0, 1):
        record = run_node(loaded, entrypoint, contract, rank, tmp_path, bin_dir)
        argv, env = record["argv"], record["env"]
        if name == "chatglm3-npu-mindformers":
            assert argv[0] == "msrun_launcher.sh" and tuple(argv[2:]) == msrun_launcher_arguments(contract, rank)
            continue
        expected = node_command(launcher, contract, rank)
        if "--nnodes" in argv or any(a.startswith("--world_info") for a in argv):
            # An explicit multi-node form: the launcher and the flags of the launcher table, with their values.
            assert argv[:len(expected) - len(flags(expected)) * (1 if launcher == "deepspeed" else 2)] == list(
                expected[:len(expected) - len(flags(expected)) * (1 if launcher == "deepspeed" else 2)])
            got = flags(argv)
            assert {k: got.get(k) for k in flags(expected)} == flags(expected)
        else:
            # The tutorial's own command: torch reads the node count, rank and master from the contract's PET_* and MASTER_*.
            assert "--nnodes" not in argv and "--node_rank" not in argv
            assert (env["PET_NNODES"], env["PET_NODE_RANK"], env["MASTER_ADDR"]) == ("2", str(rank), "10.213.1.11")
            assert any(a in (f"--master_port={port}", str(port)) for a in argv)
        assert "RANK" not in env and "WORLD_SIZE" not in env
