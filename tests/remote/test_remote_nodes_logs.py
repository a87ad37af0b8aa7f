"""`envctl logs --nodes`: the per-node logs of runs across two SSH lab hosts, read back from each
node's own workspace (real sshd, a Docker engine per host), prefixed `[rank host]` as they were
printed live; the latest run by default, another with --run, the list with --runs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import docker
import pytest

from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container: {{network: host}}
entrypoints:
  say:
    run: echo one node
    params: {{word: nothing}}
    nodes:
      launcher: none
      run: |
        echo "rank $ENVCTL_NODE_RANK of run $ENVCTL_RUN_ID"
        echo "rank $ENVCTL_NODE_RANK says $WORD"
  other:
    run: echo one node
    nodes: {{launcher: none, run: echo other}}
"""


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-nodes-logs") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def _run(world, *args) -> str:
    ran = world.run("exec", *args)
    assert ran.returncode == 0, ran.stderr
    return re.search(r"^run (\S+): master", ran.stderr, re.M).group(1)


def test_logs_of_runs_across_nodes(world, lab, tarball):
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    for host in ("lab1", "lab2", "lab3"):
        up = world.run("up", str(manifest), "--host", host)
        assert up.returncode == 0, up.stderr
    first = _run(world, "say", "--nodes", "lab1,lab2", "--set", "WORD=first")
    second = _run(world, "say", "--nodes", "lab1,lab2", "--set", "WORD=second")
    assert first != second

    latest = world.run("logs", "--nodes", "lab1,lab2")
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout == (f"[0 lab1] rank 0 of run {second}\n[0 lab1] rank 0 says second\n"
                             f"[1 lab2] rank 1 of run {second}\n[1 lab2] rank 1 says second\n")
    swapped = world.run("logs", "--nodes", "lab2,lab1", "--run", first)  # ranks as the run had them
    assert swapped.returncode == 0, swapped.stderr
    assert swapped.stdout == (f"[0 lab1] rank 0 of run {first}\n[0 lab1] rank 0 says first\n"
                              f"[1 lab2] rank 1 of run {first}\n[1 lab2] rank 1 says first\n")
    one = world.run("logs", "--nodes", "lab2", "-e", "say")  # one node of the latest run of `say`
    assert one.returncode == 0 and one.stdout == f"[1 lab2] rank 1 of run {second}\n[1 lab2] rank 1 says second\n", one.stderr

    listed = world.run("logs", "--nodes", "lab1,lab2", "--runs")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [second, first]
    assert f"master {lab.ip('lab1')}:29500  nodes 0 lab1, 1 lab2" in listed.stdout.splitlines()[0]

    none = world.run("logs", "--nodes", "lab1,lab2", "-e", "other")
    assert none.returncode == 4 and "lab1: no runs across nodes of other in " in none.stderr, none.stderr
    unknown = world.run("logs", "--nodes", "lab1,lab2", "--run", "say-20000101-000000-abcdef")
    assert unknown.returncode == 4 and "no run say-20000101-000000-abcdef" in unknown.stderr, unknown.stderr
    outsider = world.run("logs", "--nodes", "lab1,lab3")
    assert outsider.returncode == 2, outsider.stderr
    assert f"lab3 took no part in run {second} (its nodes: 0 lab1, 1 lab2)" in outsider.stderr
    misused = world.run("logs", "--run", first)
    assert misused.returncode == 2 and "--run and --runs go with --nodes" in misused.stderr

    # A node's log gone: the other's is printed, the missing one named, exit 4.
    log = world.remote("lab2", f"{world.data_dir()}/workspaces/{world.container}/logs/{second}-node1.log")
    log.unlink()
    partial = world.run("logs", "--nodes", "lab1,lab2")
    assert partial.returncode == 4, partial.stderr
    assert partial.stdout == f"[0 lab1] rank 0 of run {second}\n[0 lab1] rank 0 says second\n"
    assert f"no log of run {second} for lab2: " in partial.stderr and f"{second}-node1.log" in partial.stderr

    # --follow prints both nodes' logs and keeps reading until interrupted.
    follow = subprocess.Popen([sys.executable, "-m", "envctl", "logs", "--nodes", "lab1,lab2", "--run", first, "-f"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=world.environ())
    seen = set()
    for line in follow.stdout:
        seen.add(line.rstrip("\n"))
        if {f"[0 lab1] rank 0 says first", f"[1 lab2] rank 1 says first"} <= seen:
            break
    assert follow.poll() is None  # still following
    follow.send_signal(signal.SIGINT)
    follow.communicate(timeout=60)
    assert {f"[0 lab1] rank 0 of run {first}", f"[1 lab2] rank 1 of run {first}"} <= seen
