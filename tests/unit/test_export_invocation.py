"""The command an export says it was written by (README.md's "Written by", the comment at the
top of the slurm and shell scripts) is the whole `envctl export` command line: every option that
changes what is written (--cards, --master-port, --set, --data-dir, --pvc, --image, -- ARGS),
shell-quoted, so that running it again writes the same files. A --set whose value is a secret is
written as a reference to the variable the export reads it from ("$HUB_TOKEN"), never as the
value (the export itself passes that variable by name: -e NAME, a Secret's key)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

TOKENS = """\
name: tokens
description: a --set of a secret-looking parameter beside plain ones
device: {kind: cpu}
image: {ref: "example/trainer:1"}
entrypoints:
  train:
    params: {hub_token: "", steps: "3", note: ""}
    run: torchrun --nnodes="$ENVCTL_NNODES" --node_rank="$ENVCTL_NODE_RANK" --master_addr="$ENVCTL_MASTER_ADDR" --master_port="$ENVCTL_MASTER_PORT" t.py
    nodes: {launcher: torchrun}
"""
NPU = ["chatglm2-npu", "--entrypoint", "finetune", "--nodes", "2", "--cards", "4", "--master-port", "29611",
       "--data-dir", "/srv/envctl data", "--image", "registry.local/chatglm2:baked", "--", "--lr", "1e-4 warm"]


def _written_by(text: str) -> str:
    found = re.search(r"Written by `([^`]+)`", text)
    assert found, text
    return found.group(1)


def _export(argv: list[str], out: Path, env: dict) -> None:
    done = subprocess.run([sys.executable, "-m", "envctl", "export", "-o", str(out), *argv], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr


def _again(command: str, out: Path, env: dict) -> None:
    """Run the written command line through a shell (as a user pastes it), envctl being this checkout's."""
    assert command.startswith("envctl export "), command
    script = f'envctl() {{ "{sys.executable}" -m envctl "$@"; }}\nenvctl export -o {shlex.quote(str(out))} {command[14:]}'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def _files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("fmt,extra", [
    ("volcano", []), ("ascendjob", []), ("k8s-job", ["--pvc", "envctl-data"]), ("slurm", []), ("shell", []),
])
def test_the_written_by_command_reproduces_the_export(fmt, extra, clean_env, tmp_path):
    env = dict(clean_env)
    _export(NPU + ["--format", fmt, *extra], tmp_path / "first", env)
    files = _files(tmp_path / "first")
    command = _written_by(files["README.md"])
    for word in ("--cards 4", "--master-port 29611", "--data-dir '/srv/envctl data'", "--image registry.local/chatglm2:baked",
                 "-- --lr '1e-4 warm'", *([" ".join(extra)] if extra else [])):
        assert word in command, command
    for name, text in files.items():  # the scripts' header comment carries the same line
        if name.endswith(".sh"):
            assert f"# Written by `{command}`;" in text
    _again(command, tmp_path / "again", env)
    assert _files(tmp_path / "again") == files


def test_a_secret_set_is_written_as_a_reference_and_the_command_still_reproduces(clean_env, tmp_path):
    manifests = tmp_path / "manifests"
    (manifests / "tokens").mkdir(parents=True)
    (manifests / "tokens" / "manifest.yaml").write_text(TOKENS)
    env = {**clean_env, "ENVCTL_MANIFEST_PATH": str(manifests)}
    argv = ["tokens", "-e", "train", "-n", "2", "-f", "shell", "--set", "hub_token=hf_setvalue456", "--set", "steps=4",
            "--set", "note=two words; $(not run)\nline 2 \\ it's"]
    _export(argv, tmp_path / "first", env)
    files = _files(tmp_path / "first")
    command = _written_by(files["README.md"])
    assert "hf_setvalue456" not in "".join(files.values())
    assert """--set hub_token="$HUB_TOKEN" --set steps=4 --set $'note=two words; $(not run)\\x0aline 2 \\\\ it\\'s'""" \
        in command, command  # a newline as bash's $'\x0a': the line stays one (a comment line in the scripts)
    for name in ("node-0.sh", "node-1.sh"):
        assert f"# Written by `{command}`;\n" in files[name]
        assert subprocess.run(["bash", "-n", str(tmp_path / "first" / name)]).returncode == 0
    _again(command, tmp_path / "again", {**env, "HUB_TOKEN": "hf_setvalue456"})
    assert _files(tmp_path / "again") == files
