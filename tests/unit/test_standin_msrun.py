"""The stand-in msrun and MindFormers' msrun_launcher.sh behave as the real ones do with a worker
that fails: without --join msrun returns 0 as soon as the workers start (the two-argument
launcher form), with --join=True it waits and exits 1 (MindSpore's RuntimeError). The stand-ins
run here on the host, each worker a real Python process."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import REPO

STANDIN = REPO / "tests" / "images" / "standin-common"
LAUNCHER = REPO / "tests" / "fixtures" / "upstream" / "git" / "gitee.com" / "mindspore" / "mindformers.git" / "scripts" / "msrun_launcher.sh"


@pytest.fixture
def bench(tmp_path):
    """A PATH with `python` (this interpreter) and `msrun` (the stand-in), and a worker script
    that leaves a mark per rank, then exits with WORKER_EXIT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    msrun = bin_dir / "msrun"
    msrun.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(STANDIN)!r})\n"
                     "from standin import launchers\nlaunchers.msrun(sys.argv[1:])\n")
    msrun.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "worker.py").write_text(textwrap.dedent("""\
        import os, sys, time
        time.sleep(float(os.environ.get("WORKER_SLEEP", "0")))
        open(f"done_{os.environ['MS_NODE_ID']}", "w").close()
        sys.exit(int(os.environ.get("WORKER_EXIT", "0")))
        """))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "WORKER_EXIT": "3"}
    env.pop("STANDIN_SEQ", None)
    return work, env


def run(work, env, argv, **extra):
    return subprocess.run(argv, cwd=work, env={**env, **extra}, capture_output=True, text=True, timeout=60)


def test_msrun_without_join_returns_zero_before_its_failing_workers_end(bench):
    work, env = bench
    done = run(work, env, ["msrun", "--worker_num=2", "--local_worker_num=2", "--log_dir=logs", "worker.py"],
               WORKER_SLEEP="2")
    assert done.returncode == 0, done.stderr
    assert not list(work.glob("done_*")), "msrun waited for its workers"
    assert (work / "logs").is_dir()


def test_msrun_with_join_waits_for_every_worker_and_exits_1_when_one_failed(bench):
    work, env = bench
    done = run(work, env, ["msrun", "--worker_num=2", "--local_worker_num=2", "--log_dir=logs", "--join=True", "worker.py"])
    assert done.returncode == 1
    assert sorted(p.name for p in work.glob("done_*")) == ["done_0", "done_1"]
    assert "RuntimeError: Distributed job exited with exception. Please check logs in directory: logs." in done.stderr
    ok = run(work, env, ["msrun", "--worker_num=2", "--local_worker_num=2", "--join=True", "worker.py"], WORKER_EXIT="0")
    assert ok.returncode == 0, ok.stderr


def test_msrun_reads_join_as_a_python_literal(bench):
    work, env = bench
    done = run(work, env, ["msrun", "--join=true", "worker.py"])
    assert done.returncode == 2 and "--join: invalid literal_eval value: 'true'" in done.stderr


@pytest.mark.parametrize("args,code", [
    (["2"], 0),  # the model card's form: JOIN stays False, the failure is lost
    (["2", "8118", "output/msrun_log", "True", "7200"], 1),
    (["2", "8118", "output/msrun_log", "False", "7200"], 0),
])
def test_the_launcher_forms_decide_whether_a_failing_worker_fails_the_command(bench, args, code):
    work, env = bench
    done = run(work, env, ["bash", str(LAUNCHER), "worker.py", *args])
    assert done.returncode == code, done.stderr
