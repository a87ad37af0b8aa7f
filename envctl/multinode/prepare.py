"""Everything `exec ENTRYPOINT --nodes a,b` does before a process starts: find each node's
environment, check the nodes can train together (preflight), choose the master address, each
node's interface and one port, build the contract and write the per-run directory into every
node's workspace.

Each node is an inventory host reached over the SSH connection envctl holds and verifies (as
--hosts reaches it); rank is the order the nodes were given. The nodes run their containers
with host networking (the only mode in which a node's addresses are its host's), so `ip -j addr`
and `ip -j route get MASTER` run on the host, over that connection.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from envctl.errors import EXIT_HOST_NOT_READY, EXIT_USAGE, EnvctlError
from envctl.multinode import node_config
from envctl.nodes.addresses import AddressError, NodeNetwork, data_addresses, route_to_master
from envctl.nodes.contract import Contract, ContractError, Node, build_contract, new_run_id
from envctl.nodes.launchers import default_port

PORT_TRIES = 20  # ports tried upwards from the default before giving up


@dataclass
class NodeSite:
    """One node as found: its host, the environment there and that environment's plan."""

    rank: int
    entry: object  # envctl.remote.inventory.HostEntry
    host: object  # envctl.hosts.base.WritableHost
    environment: object  # envctl.environments.Environment
    plan: object  # envctl.plan.Plan
    image_id: str | None = None
    manifest_digest: str | None = None
    ip_addr: list | None = None
    lock_digest: str | None = None  # of the manifest.lock beside the manifest file; None: no lock
    card_models: tuple[str, ...] | None = None  # its cards' models (card_models); None: not read
    card_models_problem: str | None = None  # why they could not be read

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def processes(self) -> int:
        """Processes its launcher starts: one per card of the environment; one on a CPU host."""
        return len(self.environment.cards) or 1

    @property
    def driver(self) -> str:
        return self.plan.driver.found or "-"


def manifest_digest(path: str | None) -> str | None:
    """sha256 of the manifest file the environment was created from (on this machine), or of
    another file beside it (its manifest.lock); None when there is none."""
    try:
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def card_models(kind: str, host, cards) -> tuple[tuple[str, ...] | None, str | None]:
    """The distinct models of the environment's cards (host indices) as the vendor tool lists
    them (cnmon, npu-smi info: envctl.devices.usage), sorted; (None, why) when the tool gave
    none; (None, None) for a family without such a tool (cpu, cuda)."""
    from envctl.devices.usage import read

    reading = read(kind, host)
    if reading is None or not cards:
        return None, None
    models = {c.model for c in reading.cards if c.index in set(cards) and c.model}
    if not models:
        return None, reading.problem or f"{reading.tool} lists no model for cards {','.join(map(str, cards))}"
    return tuple(sorted(models)), None


def ip_json(host, argv: list[str], what: str) -> list:
    """The parsed JSON of an `ip -j` command run on the node's host. Raises EnvctlError."""
    result = host.run(argv, timeout=30)
    if result.returncode != 0:
        raise EnvctlError(f"{host.name}: `{' '.join(argv)}` failed: {result.stderr.strip() or result.returncode}",
                          hint="the nodes need iproute2 (ip) on the host", exit_code=EXIT_HOST_NOT_READY)
    try:
        parsed = json.loads(result.stdout)
    except ValueError:
        raise EnvctlError(f"{host.name}: `{' '.join(argv)}` printed no JSON ({what}); iproute2 older than 4.13 "
                          "has no -j", exit_code=EXIT_HOST_NOT_READY) from None
    return parsed if isinstance(parsed, list) else []


@dataclass(frozen=True)
class Row:
    """One line of the preflight table. `problems` block the run; `warnings` are said only."""

    rank: int
    host: str
    container: str
    image_id: str
    manifest: str
    driver: str
    processes: int
    problems: tuple[str, ...]
    clock: str = "-"  # skew against node 0 (envctl.nodes.clocks.Skew.text)
    address: str = "-"  # data-plane address and interface towards the master
    reach: str = "-"  # the master port from its container (envctl.multinode.reach)
    warnings: tuple[str, ...] = ()
    lock: str = "-"  # digest of its manifest.lock (JSON only: the table is wide enough)
    notes: tuple[str, ...] = ()  # how it legitimately differs from node 0 (its host's own: cards, root, ...)
    card_model: str = "-"  # its cards' model(s) as the vendor tool lists them (JSON only)

    @property
    def result(self) -> str:
        return "BLOCKED" if self.problems else "warn" if self.warnings else "ok"

    def as_dict(self) -> dict:
        return {"rank": self.rank, "host": self.host, "container": self.container, "image_id": self.image_id,
                "manifest": self.manifest, "lock": self.lock, "driver": self.driver, "processes": self.processes,
                "card_model": self.card_model,
                "clock": self.clock,
                "address": self.address, "reach": self.reach, "result": self.result,
                "problems": list(self.problems), "warnings": list(self.warnings), "per_host": list(self.notes)}


def unreachable_row(rank: int, host: str, problem: str) -> Row:
    """The line of a node that could not be opened (SSH, its engine, its environment)."""
    return Row(rank, host, "-", "-", "-", "-", 0, (problem,))


def node_views(sites: list[NodeSite]) -> list[node_config.NodeView | None]:
    """Each node's container spec split into what must be equal and what is its host's
    (envctl.multinode.node_config): from its io.envctl.spec label; else, when the container's
    config hash is the one its manifest gives on that host now, from that plan's spec; else None."""
    views = []
    for site in sites:
        spec = node_config.recorded_spec(getattr(site.environment, "container", None))
        the_spec = getattr(site.plan, "container", None)
        if spec is None and the_spec is not None and the_spec.config_hash() == site.environment.config_hash:
            spec = json.loads(json.dumps(the_spec.summary(), default=list))
        kind = getattr(getattr(site.plan, "driver", None), "kind", None) or "cpu"
        root = getattr(site.plan, "host_root", None) or "/"
        views.append(node_config.node_view(spec, kind, root) if spec is not None else None)
    return views


def preflight(sites: list[NodeSite]) -> list[Row]:
    """Compare the nodes with node 0: the same image ID, the same manifest (file digest and its
    manifest.lock's digest), the same container configuration where it must be equal (its
    node-independent view: envctl.multinode.node_config; what is the host's own, such as which
    cards and the host root, is a note, a driver file passed on one node only a warning), the
    same driver, equal card counts and the same card model (a model not read: a warning); and
    each container on its host's network (a node's addresses are its host's only then). A
    node's problems name what differs from node 0's value."""
    first = sites[0]
    views = node_views(sites)
    rows = []
    for site, view in zip(sites, views):
        problems, warnings, notes = [], [], []
        if site.environment.status != "running":
            problems.append(f"container {site.environment.name} is {site.environment.status}")
        mode = network_mode(site.environment)
        if mode is not None and mode != "host":
            problems.append(f"container {site.environment.name} runs on network '{mode}', not the host's: set "
                            "container: {network: host} in the manifest and run envctl up again")
        for what, mine, theirs in (("image ID", site.image_id, first.image_id),
                                   ("manifest", site.manifest_digest, first.manifest_digest),
                                   ("manifest.lock", site.lock_digest, first.lock_digest),
                                   ("driver", site.driver, first.driver),
                                   ("cards", site.processes, first.processes)):
            if mine != theirs:
                problems.append(f"{what} {_short(mine)} differs from {first.name}'s {_short(theirs)}")
        if site.card_models and first.card_models and site.card_models != first.card_models:
            problems.append(f"card model {', '.join(site.card_models)} differs from {first.name}'s "
                            f"{', '.join(first.card_models)}")
        elif site.card_models_problem and first.card_models:
            warnings.append(f"its card model could not be read ({site.card_models_problem}): not compared with "
                            f"{first.name}'s {', '.join(first.card_models)}")
        elif first.card_models_problem and site.card_models and site is not first:
            warnings.append(f"card model {', '.join(site.card_models)} not compared: {first.name}'s could not be read")
        if view is None:
            problems.append(f"container {site.environment.name} records no configuration envctl can compare "
                            f"(no {node_config.LABEL_SPEC} label): run envctl up for it again")
        elif site is not first and views[0] is not None:
            compared = node_config.compare(view, views[0], first.name,
                                           said=("network_mode",) if mode is not None and mode != "host" else ())
            problems += compared.problems
            warnings += compared.warnings
            notes += compared.notes
        rows.append(Row(site.rank, site.name, site.environment.name, _short(site.image_id),
                        _short(site.manifest_digest), site.driver, site.processes, tuple(problems),
                        warnings=tuple(warnings), lock=_short(site.lock_digest), notes=tuple(notes),
                        card_model=", ".join(site.card_models or ()) or "-"))
    return rows


def network_mode(environment) -> str | None:
    """The container's network mode as its engine reports it (HostConfig.NetworkMode)."""
    container = getattr(environment, "container", None)
    attrs = getattr(container, "attrs", None) or {}
    return (attrs.get("HostConfig") or {}).get("NetworkMode")


def _short(value) -> str:
    text = str(value) if value is not None else "-"
    return text[:19] if text.startswith("sha256:") else text


HEADER = ("rank", "host", "container", "image ID", "manifest", "driver", "procs", "clock", "address", "port",
          "result")


def table(rows: list[Row], problems: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The preflight table, one line per node, then each node's problems and warnings on lines
    of their own, then what is its host's own (a line per node that has any), then the run's own
    problems (the master address, the port)."""
    lines = [(str(r.rank), r.host, r.container, r.image_id, r.manifest, r.driver, str(r.processes), r.clock,
              r.address, r.reach, r.result) for r in rows]
    widths = [max(len(HEADER[i]), *(len(line[i]) for line in lines)) for i in range(len(HEADER))]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    out += [f"  {r.host}: {p}" for r in rows for p in r.problems]
    out += [f"  {r.host}: warning: {w}" for r in rows for w in r.warnings]
    out += [f"  {r.host}: its host's own (may differ): {'; '.join(r.notes)}" for r in rows if r.notes]
    out += [f"  {p}" for p in problems]
    return out


def choose_network(sites: list[NodeSite], master_addr: str | None) -> list[Node]:
    """Each node's data-plane address and interface towards the master. Raises EnvctlError
    (exit 5) with the candidates when the choice is ambiguous."""
    for site in sites:
        site.ip_addr = ip_json(site.host, ["ip", "-j", "addr"], "addresses")
    given = [site.entry.data_addr for site in sites]
    if master_addr:
        given[0] = master_addr
    try:
        addresses = data_addresses([NodeNetwork(s.name, s.ip_addr, g) for s, g in zip(sites, given)])
        nodes = []
        for site, address in zip(sites, addresses):
            route = ip_json(site.host, ["ip", "-j", "route", "get", addresses[0]], "route to the master")
            chosen = route_to_master(site.name, route, site.ip_addr, address)
            nodes.append(Node(site.name, address, site.processes, chosen.ifname, chosen.source))
    except AddressError as problem:
        raise EnvctlError(str(problem), exit_code=EXIT_HOST_NOT_READY) from None
    return nodes


def listening_ports(host) -> set[int]:
    """TCP ports something listens on, on the host (`ss -Hltn`; host networking: the container's)."""
    result = host.run(["ss", "-H", "-l", "-t", "-n"], timeout=30)
    if result.returncode != 0:
        raise EnvctlError(f"{host.name}: `ss -Hltn` failed: {result.stderr.strip()}", exit_code=EXIT_HOST_NOT_READY)
    ports = set()
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].rpartition(":")[2].isdigit():
            ports.add(int(fields[3].rpartition(":")[2]))
    return ports


def master_port(master_host, launcher: str, params: dict, explicit: int | None) -> int:
    """--master-port when given (refused when taken); else the launcher's default, moved up to
    the first port nothing listens on at the master."""
    taken = listening_ports(master_host)
    port = default_port(launcher, params, explicit)
    if explicit is not None:
        if port in taken:
            raise EnvctlError(f"port {port} is in use on {master_host.name}, the master", exit_code=EXIT_HOST_NOT_READY,
                              hint="choose another with --master-port, or leave it out to get a free one")
        return port
    for candidate in range(port, min(port + PORT_TRIES, 65536)):
        if candidate not in taken:
            return candidate
    raise EnvctlError(f"ports {port}-{port + PORT_TRIES - 1} are all in use on {master_host.name}",
                      hint="choose one with --master-port", exit_code=EXIT_HOST_NOT_READY)


def make_contract(nodes: list[Node], port: int, entrypoint: str, device_kind: str) -> Contract:
    run_id = new_run_id(entrypoint, time.strftime("%Y%m%d-%H%M%S", time.gmtime()), secrets.token_hex(3))
    try:
        return build_contract(nodes, port, run_id, device_kind)
    except ContractError as problem:
        raise EnvctlError(str(problem), exit_code=EXIT_USAGE) from None


def run_dir_on_host(site: NodeSite, contract: Contract) -> str:
    """The per-run directory on the node's host: <workspace>/nodes/<run id>, which the
    container sees at contract.run_dir (the workspace is mounted at /envctl)."""
    workspace = site.environment.workspace
    if not workspace:
        raise EnvctlError(f"{site.name}: {site.environment.name} has no workspace mount; recreate it with envctl up",
                          exit_code=EXIT_HOST_NOT_READY)
    return f"{workspace}/nodes/{contract.run_id}"


def write_run_dirs(sites: list[NodeSite], contract: Contract) -> None:
    """nodes.json, hostfile and env into every node's per-run directory (atomic writes)."""
    for site in sites:
        directory = run_dir_on_host(site, contract)
        site.host.mkdirs(directory)
        for name, text in contract.files(site.rank).items():
            site.host.write_file(f"{directory}/{name}", text.encode("utf-8"))
