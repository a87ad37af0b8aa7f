"""--var in `envctl export`: the exported files name the environment with its --var values
(the `envctl up`/`fetch`/`build` commands a user runs on the nodes, the container's default name)
and the "Written by" command line, shell-quoted, writes the same files again."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REFERENCE = ["chatglm-tiny-cpu:nodes", "--entrypoint", "train", "--nodes", "2"]
GIVEN = ["--var", "workspace=/workspace/my run", "--var", "model_revision=abc123"]


def export(argv, out: Path, env) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "envctl", "export", "-o", str(out), *argv], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_text() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("fmt", ["slurm", "shell", "volcano"])
def test_the_written_by_command_carries_the_vars_and_reproduces_the_export(fmt, clean_env, tmp_path):
    env = dict(clean_env)
    files = export(REFERENCE + GIVEN + ["--format", fmt], tmp_path / "first", env)
    command = re.search(r"Written by `([^`]+)`", files["README.md"]).group(1)
    assert command.startswith("envctl export chatglm-tiny-cpu:nodes --var 'workspace=/workspace/my run' "
                              "--var model_revision=abc123 --entrypoint train"), command
    script = f'envctl() {{ "{sys.executable}" -m envctl "$@"; }}\nenvctl export -o {shlex.quote(str(tmp_path / "again"))} {command[14:]}'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_text() for p in sorted((tmp_path / "again").iterdir())} == files


def test_the_commands_the_nodes_need_name_the_vars(clean_env, tmp_path):
    files = export(REFERENCE + GIVEN + ["--format", "slurm"], tmp_path / "out", dict(clean_env))
    readme = files["README.md"]
    assert ("`envctl up chatglm-tiny-cpu:nodes --var 'workspace=/workspace/my run' --var model_revision=abc123 "
            "--hosts NODES`") in readme
    assert "`envctl fetch chatglm-tiny-cpu:nodes --var 'workspace=/workspace/my run' --var model_revision=abc123 " in readme
    # what the vars resolve to is what is exported: the artifact's target under the workspace given
    assert "/workspace/my run/models/tiny-glm" in "".join(files.values())


def test_an_export_without_vars_is_as_before(clean_env, tmp_path):
    files = export(REFERENCE + ["--format", "slurm"], tmp_path / "out", dict(clean_env))
    assert "--var" not in "".join(files.values())


def test_check_of_a_directory_refuses_var(clean_env, tmp_path):
    done = subprocess.run([sys.executable, "-m", "envctl", "export", str(tmp_path), "--check", "--var", "a=1"],
                          capture_output=True, text=True, env=dict(clean_env))
    assert done.returncode == 2 and "--check DIR checks an export already written: drop --var" in done.stderr
