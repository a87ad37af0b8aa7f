"""Stopping what a run across nodes left (envctl.multinode.stopping): the sweep script run by sh
against real processes of this machine (it reads /proc as it does in a container), and the
signal sequence with recorded sweeps (no time is measured: the grace periods are zero)."""

import os
import signal
import subprocess
import uuid

from envctl.multinode.stopping import MARK, SWEEP, Swept, stop_sequence


def _sweep_here(run_id: str, signame: str) -> list[int]:
    done = subprocess.run(["sh", "-c", SWEEP, "sh", signame, run_id], capture_output=True, text=True, check=True)
    line = [line for line in done.stdout.splitlines() if line.startswith(MARK)][0]
    return sorted(int(p) for p in line[len(MARK):].split())


def test_the_sweep_finds_the_run_its_orphans_and_children_that_cleared_their_environment():
    run_id = f"train-20261130-000000-{uuid.uuid4().hex[:6]}"
    marked = {**os.environ, "ENVCTL_RUN_ID": run_id}
    # A launcher with a background worker (SIGINT ignored, as sh starts it) and a child that
    # cleared its environment; an orphan whose parent is gone; a process of another run.
    launcher = subprocess.Popen(["sh", "-c", "sleep 3000 & env -i sleep 3001 & wait"], env=marked)
    orphan_parent = subprocess.Popen(["sh", "-c", "sleep 3002 & echo $!"], env=marked, stdout=subprocess.PIPE, text=True)
    orphan = int(orphan_parent.stdout.readline())
    orphan_parent.wait()
    other = subprocess.Popen(["sleep", "3003"], env={**os.environ, "ENVCTL_RUN_ID": run_id + "x"})
    try:
        for _ in range(100):  # until the launcher's two children exist
            children = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
            if len(children) == 2:
                break
            subprocess.run(["sleep", "0.05"])
        found = _sweep_here(run_id, "0")
        assert set(found) == {launcher.pid, orphan, *map(int, children)}, found
        assert other.pid not in found
        assert _sweep_here(run_id, "KILL") == found
        launcher.wait(timeout=30)
        for _ in range(100):
            if not _sweep_here(run_id, "0"):
                break
            subprocess.run(["sleep", "0.05"])
        assert _sweep_here(run_id, "0") == []
        assert other.poll() is None  # another run's process is left alone
    finally:
        for process in (launcher, other):
            process.kill()
        try:
            os.kill(orphan, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Node:
    def __init__(self, name, leftovers_after: dict, running: bool = True, unreachable: str | None = None,
                 ends_on: str | None = None):
        self.name = name
        self.ends_on = ends_on  # the signal that ends its own process (its docker exec), leftovers or not
        self.plan = leftovers_after  # signal → processes still there after it (what a sweep then finds)
        self.running = running
        self.sent: list[str] = []
        self.stopped_by = None
        self.leftovers = 0
        self.unreachable = None
        self.cannot = unreachable


def _sweep(node, signame):
    if node.cannot:
        return Swept(unreachable=node.cannot)
    if signame == "0":
        return Swept(tuple(range(node.plan.get(node.sent[-1], 0))) if node.sent else ())
    before = node.plan.get(node.sent[-1], 1) if node.sent else node.plan.get("start", 1)
    if before:
        node.sent.append(signame)
        if node.plan.get(signame, 0) == 0 or signame == node.ends_on:
            node.running = False
    return Swept(tuple(range(before)))


def test_the_sequence_goes_on_while_anything_of_the_run_is_left():
    obeys_int = Node("a", {"start": 2, "INT": 0})
    ignores_int = Node("b", {"start": 2, "INT": 1, "TERM": 0}, ends_on="INT")  # its background child ignores SIGINT
    stubborn = Node("c", {"start": 1, "INT": 1, "TERM": 1, "KILL": 0})
    ended = Node("d", {"start": 2, "INT": 0}, running=False)  # the failed node: its orphans are left
    gone = Node("e", {}, unreachable="Cannot connect to the Docker daemon")
    nodes = [obeys_int, ignores_int, stubborn, ended, gone]
    stop_sequence(nodes, (0.0, 0.0), 0.0, _sweep, lambda node: node.running)
    assert obeys_int.sent == ["INT"] and obeys_int.stopped_by == "SIGINT"
    assert ignores_int.sent == ["INT", "TERM"] and ignores_int.stopped_by == "SIGINT" and ignores_int.leftovers == 1
    assert stubborn.sent == ["INT", "TERM", "KILL"] and stubborn.stopped_by == "SIGKILL"
    assert ended.sent == ["INT"] and ended.stopped_by is None and ended.leftovers == 2
    assert gone.sent == [] and gone.unreachable == "Cannot connect to the Docker daemon"
