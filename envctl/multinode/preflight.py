"""The preflight of a run across nodes, before anything starts (`exec --nodes`, `doctor --nodes`,
`plan --nodes`): every node opened at once, then one table line per node.

In order: each node over its verified SSH connection and its running environment (a node
that cannot be reached, whose engine does not answer or that has no such environment is a
line of its own, not a traceback: the other nodes are still checked); the same image ID,
manifest, driver, card count and card model as node 0, the container config where it must be
equal (its node-independent view, envctl.multinode.node_config), host networking
(prepare.preflight);
each node's clock against node 0's (envctl.nodes.clocks); the master address and each node's
interface (prepare.choose_network); one master port free on the master; the master port
reachable from every other node's container (envctl.multinode.reach). Anything that blocks
makes `blocked` true (exit 5 for the commands).
"""

from __future__ import annotations

import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.multinode import prepare, reach
from envctl.nodes import clocks
from envctl.nodes.contract import Node


@dataclass
class Opened:
    """A node as opening it went: its site, or why it could not be opened."""

    rank: int
    name: str
    site: prepare.NodeSite | None = None
    problem: str | None = None


@dataclass
class Preflight:
    opened: list[Opened]
    rows: list[prepare.Row]
    problems: list[str] = field(default_factory=list)  # the run's own: address choice, the port
    nodes: list[Node] | None = None  # address, interface, processes per node, rank order
    port: int | None = None

    @property
    def sites(self) -> list[prepare.NodeSite]:
        return [o.site for o in self.opened if o.site is not None]

    @property
    def blocked(self) -> bool:
        return bool(self.problems) or any(row.problems for row in self.rows)

    def table(self) -> list[str]:
        return prepare.table(self.rows, self.problems)

    def as_dict(self) -> dict:
        master = {"addr": self.nodes[0].address, "port": self.port} if self.nodes and self.port else None
        return {"blocked": self.blocked, "master": master, "nodes": [row.as_dict() for row in self.rows],
                "problems": list(self.problems)}


def _find(rank: int, entry, remote, env_name: str | None) -> prepare.NodeSite:
    from envctl import environments
    from envctl.cli_lifecycle import _plan_for
    from envctl.cli_remote import open_entry

    host = open_entry(entry, remote)
    environment = environments.choose(host.engine(), env_name)
    site = prepare.NodeSite(rank, entry, host, environment, _plan_for(environment, host))
    site.image_id = environment.container.attrs.get("Image")
    site.manifest_digest = prepare.manifest_digest(environment.manifest_file)
    site.card_models, site.card_models_problem = prepare.card_models(site.plan.driver.kind, host, environment.cards)
    if environment.manifest_file:
        from envctl.artifacts.lockfile import lock_path

        site.lock_digest = prepare.manifest_digest(str(lock_path(Path(environment.manifest_file))))
    return site


def open_nodes(remote, env_name: str | None) -> list[Opened]:
    """Every node, rank = order given, each opened at once; two or more distinct hosts
    (else EnvctlError, exit 2). A node that cannot be opened carries its problem."""
    from envctl.cli_remote import entries

    chosen = entries(remote)
    twice = _named_twice(remote)
    if twice:
        raise EnvctlError(f"--nodes names {', '.join(twice)} more than once (a host given twice, or also a member of a "
                          "group given)", hint="rank = the order given: name each host once", exit_code=EXIT_USAGE)
    if len(chosen) < 2:
        raise EnvctlError(f"--nodes needs two or more hosts, got {len(chosen)} ({', '.join(e.name for e in chosen)})",
                          hint="for one host use --host", exit_code=EXIT_USAGE)

    def one(pair) -> Opened:
        rank, entry = pair
        try:
            return Opened(rank, entry.name, site=_find(rank, entry, remote, env_name))
        except EnvctlError as exc:
            said = exc.message.splitlines()[0] if exc.message else type(exc).__name__
            said = said[len(entry.name) + 2:] if said.startswith(f"{entry.name}: ") else said  # the table names it
            return Opened(rank, entry.name, problem=said + (f" ({exc.hint})" if exc.hint else ""))

    with ThreadPoolExecutor(max_workers=min(16, len(chosen))) as pool:
        return list(pool.map(one, enumerate(chosen)))


def _named_twice(remote) -> list[str]:
    """The hosts the --nodes names designate more than once, in the order first given: for
    --hosts a repeat is harmless, but here the order is the ranks, so `lab1,lab2,lab1` or
    `pair,lab1` (lab1 in group pair) has no one meaning."""
    import os

    from envctl.remote.inventory import load_inventory, select, split_names

    inventory = load_inventory(remote.inventory, os.environ)
    counted: dict[str, int] = {}
    for typed in split_names(list(remote.hosts)):
        for entry in select(inventory, [typed]):
            counted[entry.name] = counted.get(entry.name, 0) + 1
    return [name for name, count in counted.items() if count > 1]


def _one_container_twice(sites: list[prepare.NodeSite]) -> list[str]:
    """Nodes whose environment is one container (one engine: two inventory names, or a name
    and an address, for one host): a problem each, naming the node it repeats."""
    first: dict[str, str] = {}
    problems = []
    for site in sites:
        container_id = getattr(site.environment.container, "id", None)
        if not container_id:
            continue
        if container_id in first:
            problems.append(f"{site.name} and {first[container_id]} are one host: the same container "
                            f"{container_id[:12]} of the same engine (name each host once in --nodes)")
        else:
            first[container_id] = site.name
    return problems


def read_clock(host) -> clocks.Reading:
    """The node's clock, read over its connection SAMPLES times, and up to MORE_SAMPLES while
    the shortest round trip is longer than GOOD_ROUND_TRIP_S (a loaded host or link: one quick
    answer is enough to tell); the shortest round trip wins. Raises ClockError (a reading that
    is not a date) or EnvctlError (a lost connection)."""
    readings: list[clocks.Reading] = []
    while len(readings) < clocks.SAMPLES or (len(readings) < clocks.MORE_SAMPLES and
                                             clocks.best(readings).round_trip > clocks.GOOD_ROUND_TRIP_S):
        sent = time.time()
        result = host.run(list(clocks.READ_CLOCK), timeout=30)
        received = time.time()
        if result.returncode != 0:
            raise clocks.ClockError(f"`{' '.join(clocks.READ_CLOCK)}` failed: {result.stderr.strip() or result.returncode}")
        remote, resolution = clocks.parse_date(result.stdout)
        readings.append(clocks.Reading(sent, remote, received, resolution))
    return clocks.best(readings)


def _clock_or_problem(site: prepare.NodeSite) -> tuple[clocks.Reading | None, str | None]:
    try:
        return read_clock(site.host), None
    except (clocks.ClockError, EnvctlError) as exc:
        return None, f"its clock could not be read: {exc}"


def run(opened: list[Opened], launcher: str = "none", params: dict | None = None, master_addr: str | None = None,
        master_port: int | None = None, tolerance: float = clocks.TOLERANCE_S) -> Preflight:
    """Every check, on nodes opened by open_nodes. `launcher` and `params` give the default
    master port (envctl.nodes.launchers.default_port); `master_addr`, `master_port`: the
    command line's. Never raises for a node's state: it ends up in the rows or problems."""
    sites = [o.site for o in opened if o.site is not None]
    identity = {row.rank: row for row in prepare.preflight(sites)} if sites else {}
    rows = {o.rank: identity.get(o.rank) or prepare.unreachable_row(o.rank, o.name, f"cannot be used: {o.problem}")
            for o in opened}
    check = Preflight(opened, [])

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(sites)))) as pool:
        clock_results = dict(zip((s.rank for s in sites), pool.map(_clock_or_problem, sites)))
    readings = [clock_results.get(o.rank, (None, None))[0] for o in opened]
    for o, skew in zip(opened, clocks.skews(readings, tolerance)):
        if o.site is None:
            continue
        row = replace(rows[o.rank], clock="0 (ref)" if o.rank == 0 and skew.seconds is not None else skew.text())
        problem = clock_results[o.rank][1]
        if problem:
            row = replace(row, problems=row.problems + (problem,))
        elif skew.status == "blocked":
            row = replace(row, problems=row.problems + (skew.detail,))
        elif skew.status == "unsure" or (skew.status == "unknown" and o.rank != 0):
            row = replace(row, warnings=row.warnings + (skew.detail,))
        rows[o.rank] = row

    check.problems.extend(_one_container_twice(sites))
    if len(sites) == len(opened) and not check.problems:  # the network needs every node, each once
        try:
            check.nodes = prepare.choose_network(sites, master_addr)
        except EnvctlError as exc:
            check.problems.append(exc.message)
        if check.nodes is not None:
            for site, node in zip(sites, check.nodes):
                rows[site.rank] = replace(rows[site.rank], address=f"{node.address} {node.ifname or '?'}")
            try:
                check.port = prepare.master_port(sites[0].host, launcher, dict(params or {}), master_port)
            except EnvctlError as exc:
                check.problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        if check.nodes is not None and check.port is not None:
            try:
                reached = reach.check(sites, check.nodes[0].address, check.port)
            except EnvctlError as exc:  # node 0's engine stopped answering
                reached = [reach.Reach("blocked", f"the listener could not start: {exc.message}", "failed")] + \
                          [reach.Reach("unsure", "", "not checked") for _ in sites[1:]]
            for site, result in zip(sites, reached):
                row = replace(rows[site.rank], reach=result.text)
                if result.status == "blocked":
                    row = replace(row, problems=row.problems + (result.detail,))
                elif result.detail:
                    row = replace(row, warnings=row.warnings + (result.detail,))
                rows[site.rank] = row
    elif len(sites) != len(opened):
        check.problems.append("the master address, interfaces and port are chosen once every node can be used")
    check.rows = [rows[o.rank] for o in opened]
    return check


def for_entrypoint(remote, env_name: str | None, entrypoint: str, master_addr: str | None,
                   master_port: int | None) -> tuple[Preflight, object, object]:
    """Open the nodes, refuse an entrypoint that cannot run on several nodes (exit 2, read from
    the first node that could be opened) and run the preflight with its launcher's port.
    Returns (the preflight, the loaded manifest, the entrypoint's declaration); the last two
    are None when no node could be opened."""
    from envctl.multinode.command import multi_node_entry

    opened = open_nodes(remote, env_name)
    first = next((o.site for o in opened if o.site is not None), None)
    if first is None:
        return run(opened, master_addr=master_addr, master_port=master_port), None, None
    loaded, declared = multi_node_entry(first, entrypoint)
    check = run(opened, declared.nodes.launcher, dict(declared.params), master_addr, master_port)
    return check, loaded, declared
