"""The per-node logs of runs across several nodes: `envctl logs --nodes lab1,lab2`.

Where they are: every node keeps its own output in its environment's workspace on its host,
`<workspace>/logs/<run id>-node<rank>.log`, beside the run's directory
`<workspace>/nodes/<run id>/` whose nodes.json names every node's rank (envctl.nodes.contract).
The run id begins with the entrypoint's name (`<entrypoint>-<YYYYmmdd-HHMMSS>-<token>`), so the
single-node `logs --entrypoint E` glob (envctl.execute.log_pattern) finds these logs too.

Which run: `--run RUN_ID`, else the newest run directory on the first node named (of the
entrypoint, when one is given). Each node's rank comes from that run's nodes.json, not from
the order the nodes are named in now; a node named that was not part of the run is refused.
Lines are printed prefixed `[rank host]`, as `exec --nodes` printed them live: node by node in
rank order, or with --follow interleaved as they are appended, until every node's log stops
(Ctrl-C).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from envctl.errors import EXIT_NOT_FOUND, EXIT_USAGE, EnvctlError


def log_path(workspace: str, run_id: str, rank: int) -> str:
    """The node's log on its host: <workspace>/logs/<run id>-node<rank>.log."""
    return f"{workspace}/logs/{run_id}-node{rank}.log"


# $1: the workspace; $2: a run-id prefix ('' for every run). Prints, newest first, each run
# directory's name, a tab, and its nodes.json on one line (empty when it has none).
_RUNS = ('cd "$1/nodes" 2>/dev/null || exit 0; for d in $(ls -1t); do case "$d" in "$2"*) ;; *) continue ;; esac; '
         '[ -d "$d" ] || continue; printf "%s\\t" "$d"; tr -d "\\n" < "$d/nodes.json" 2>/dev/null; echo; done')


@dataclass(frozen=True)
class NodeRun:
    """A run as one node's workspace records it."""

    run_id: str
    ranks: dict  # node name → rank, from nodes.json
    master: str  # addr:port


@dataclass
class NodeSide:
    """One node as `logs --nodes` sees it."""

    name: str
    host: object  # None: it could not be reached (problem says why)
    workspace: str
    problem: EnvctlError | None = None


def open_sides(remote, env_name: str | None) -> list[NodeSide]:
    """Every node named, its environment found (stopped ones too); each reached at once. A node
    that cannot be reached (or has no such environment) is kept with its problem, so that the
    others' logs are still shown: after a run a host went down in, the survivors' logs are
    what tell why. Raises the first node's problem when none can be reached."""
    from envctl import environments
    from envctl.cli_remote import entries, open_entry

    def one(entry) -> NodeSide:
        try:
            host = open_entry(entry, remote)
            chosen = environments.choose(host.engine(), env_name, running_only=False)
            if not chosen.workspace:
                raise EnvctlError(f"{entry.name}: {chosen.name} has no workspace mount")
        except EnvctlError as exc:
            return NodeSide(entry.name, None, "", problem=exc)
        return NodeSide(entry.name, host, chosen.workspace)

    chosen = entries(remote)
    with ThreadPoolExecutor(max_workers=min(16, len(chosen))) as pool:
        sides = list(pool.map(one, chosen))
    if all(side.problem for side in sides):
        raise sides[0].problem
    return sides


def _reached(sides: list[NodeSide]) -> NodeSide:
    return next(side for side in sides if side.problem is None)


def runs_on(side: NodeSide, prefix: str = "") -> list[NodeRun]:
    """The runs recorded in the node's workspace, newest first."""
    result = side.host.run(["sh", "-c", _RUNS, "sh", side.workspace, prefix], timeout=60)
    if result.returncode != 0:
        raise EnvctlError(f"{side.name}: cannot list {side.workspace}/nodes: {result.stderr.strip()}")
    found = []
    for line in result.stdout.splitlines():
        run_id, _, document = line.partition("\t")
        try:
            data = json.loads(document)
            ranks = {node["name"]: int(node["rank"]) for node in data["nodes"]}
            master = f"{data['master']['addr']}:{data['master']['port']}"
        except (ValueError, KeyError, TypeError):
            continue  # not a run directory envctl wrote whole (nodes.json is written atomically)
        found.append(NodeRun(run_id, ranks, master))
    return found


def choose_run(sides: list[NodeSide], entrypoint: str | None, run_id: str | None) -> NodeRun:
    """--run, or the newest run (of the entrypoint) on the first node; every node named must
    have taken part. Raises EnvctlError (exit 4 when there is none, 2 for a node not in it)."""
    first = _reached(sides)
    prefix = run_id if run_id else (f"{entrypoint}-" if entrypoint else "")
    runs = [r for r in runs_on(first, prefix) if run_id is None or r.run_id == run_id]
    if not runs:
        what = f"no run {run_id}" if run_id else "no runs across nodes" + (f" of {entrypoint}" if entrypoint else "")
        raise EnvctlError(f"{first.name}: {what} in {first.workspace}/nodes", exit_code=EXIT_NOT_FOUND,
                          hint="envctl logs --nodes ... --runs lists the runs")
    run = runs[0]
    outside = [side.name for side in sides if side.name not in run.ranks]
    if outside:
        raise EnvctlError(f"{', '.join(outside)} took no part in run {run.run_id} (its nodes: "
                          f"{', '.join(f'{rank} {name}' for name, rank in sorted(run.ranks.items(), key=lambda i: i[1]))})",
                          exit_code=EXIT_USAGE)
    return run


def run_lines(sides: list[NodeSide], entrypoint: str | None) -> list[str]:
    """`envctl logs --nodes ... --runs`: the runs on the first node reached, newest first."""
    first = _reached(sides)
    runs = runs_on(first, f"{entrypoint}-" if entrypoint else "")
    if not runs:
        return [f"no runs across nodes in {first.workspace}/nodes on {first.name}"]
    return [f"{r.run_id}  master {r.master}  nodes " + ", ".join(f"{rank} {name}" for name, rank in
                                                                  sorted(r.ranks.items(), key=lambda i: i[1]))
            for r in runs]


def _reader(side: NodeSide, path: str, follow: bool) -> subprocess.Popen:
    argv = ["tail", "-n", "+1", *(["-F"] if follow else []), "--", path]
    connection = getattr(side.host, "connection", None)
    local = connection.command(argv) if connection is not None else argv
    return subprocess.Popen(local, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def show(sides: list[NodeSide], run: NodeRun, follow: bool, out=None) -> int:
    """Print every node's log of the run prefixed `[rank host]`. Returns 0; raises EnvctlError
    after printing the others: a node not reached (its own error, e.g. exit 7), else 4 when a
    node's log is missing."""
    out = out or sys.stdout.buffer
    ordered = sorted(sides, key=lambda side: run.ranks[side.name])
    lock = threading.Lock()
    missing: list[str] = []

    def pump(side: NodeSide) -> None:
        if side.problem is not None:
            return
        rank = run.ranks[side.name]
        path = log_path(side.workspace, run.run_id, rank)
        prefix = f"[{rank} {side.name}] ".encode()
        reader = _reader(side, path, follow)
        for line in iter(reader.stdout.readline, b""):
            with lock:
                out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
                out.flush()
        if reader.wait() != 0 and not follow:
            missing.append(f"{side.name}: {path}: {reader.stderr.read().decode(errors='replace').strip()}")

    if follow:
        for side in ordered:  # -f runs until interrupted: say now what will not be followed
            if side.problem is not None:
                sys.stderr.write(f"warning: not following {side.name}'s log: {side.problem.message}\n")
        threads = [threading.Thread(target=pump, args=(side,), daemon=True) for side in ordered]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for side in ordered:
            pump(side)
    unreached = [side.problem for side in ordered if side.problem is not None]
    if unreached:
        first = unreached[0]
        raise EnvctlError(f"{first.message}; its log of run {run.run_id} could not be read"
                          + (f" (nor that of {len(unreached) - 1} more)" if len(unreached) > 1 else "")
                          + ("; the other nodes' logs are above" if len(unreached) < len(ordered) else ""),
                          hint=first.hint, exit_code=first.exit_code)
    if missing:
        raise EnvctlError("no log of run " + run.run_id + " for " + "; ".join(missing), exit_code=EXIT_NOT_FOUND)
    return 0

