"""`envctl exec ENTRYPOINT --nodes lab1,lab2`: one run across several hosts.

Steps, in order, nothing started before the last: open every node (SSH, host keys verified, as
--hosts does) and find its running environment; refuse an entrypoint without `nodes:`; the
preflight (envctl.multinode.preflight: identity, clocks, the master address, interfaces and
one free port, the port reachable from every container; a table, exit 5 on a blocker); the
contract written into every node's per-run directory; then every node's launcher at once
(envctl.multinode.supervise).
"""

from __future__ import annotations

import os
from pathlib import Path

from envctl import runtime_env
from envctl.cli_app import say
from envctl.errors import EXIT_HOST_NOT_READY, EXIT_USAGE, EnvctlError
from envctl.multinode import node_logs, nodeplan, preflight, prepare, rank_table, supervise


class _LocalLog:
    """A node's log on this machine (a LocalHost writes nothing remotely)."""

    def __init__(self, path: str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def multi_node_entry(site: prepare.NodeSite, entrypoint: str):
    """The manifest's entrypoint and its `nodes:`; refuses one that cannot run on several nodes."""
    from envctl.manifest.loader import load

    loaded = load(site.environment.manifest_file, variant=site.environment.variant, vars=site.environment.vars)
    declared = loaded.manifest.entrypoints.get(entrypoint)
    if declared is None:
        raise EnvctlError(f"{site.environment.reference} has no entrypoint '{entrypoint}'; entrypoints: "
                          f"{', '.join(loaded.manifest.entrypoints) or 'none'}", exit_code=EXIT_USAGE)
    if declared.nodes is None:
        raise EnvctlError(f"entrypoint {entrypoint} of {site.environment.reference} does not say it can run on several "
                          "nodes", hint="add nodes: {launcher: torchrun|torch.distributed.launch|deepspeed|msrun|none} to it "
                          "in the manifest (and make its command take the ENVCTL_* node contract)", exit_code=EXIT_USAGE)
    return loaded, declared


def exec_on_nodes(entrypoint: str, extra: list[str], env_name: str | None, sets: list[str], remote,
                  master_addr: str | None, master_port: int | None, with_rank_table: bool = False) -> int:
    check, loaded, declared = preflight.for_entrypoint(remote, env_name, entrypoint, master_addr, master_port)
    for line in check.table():
        say(line)
    if check.blocked:
        raise EnvctlError("the nodes cannot run together (preflight above); nothing was started",
                          exit_code=EXIT_HOST_NOT_READY)
    sites = check.sites
    contract = prepare.make_contract(check.nodes, check.port, entrypoint, loaded.manifest.device.kind)
    # What can still refuse the run (a --set the entrypoint does not declare, --rank-table off
    # Ascend, a rank table's problems) does so before a run is announced and its directory
    # written on every node: `logs --runs` lists every run directory as a run.
    commands = [nodeplan.command_for(site, loaded, declared, entrypoint, sets, extra) for site in sites]
    table = rank_table.build(sites, contract, loaded.manifest.device.kind, say)[0] if with_rank_table else None
    say(f"run {contract.run_id}: master {contract.master_addr}:{contract.master_port}, "
        f"{contract.nnodes} nodes, {contract.world_size} processes")
    prepare.write_run_dirs(sites, contract)
    shared = rank_table.write(sites, contract, table) if table is not None else {}
    # container.pass_env, valued on this machine (every node's docker client runs here); the
    # entrypoint's own variables and the contract win.
    runtime = runtime_env.for_manifest(loaded)
    passed, hidden = dict(runtime.values), tuple(runtime.secrets)

    processes = []
    for site, node, command in zip(sites, contract.nodes, commands):
        argv, variables, entry = command.argv, command.variables, command.entry
        log_path = node_logs.log_path(site.environment.workspace, contract.run_id, site.rank)
        log = site.host.log_writer(log_path) or _LocalLog(log_path)
        processes.append(supervise.NodeProcess(
            site.rank, site.name, site.environment.name, argv, {**passed, **variables, **contract.env(site.rank), **shared},
            entry.workdir, site.host.docker_cli_environ(os.environ), log, log_path, entrypoint,
            reconnect=supervise.reconnector(site.host), masked=hidden))
        say(f"[{site.rank} {site.name}] interface {node.ifname}, address {node.address}, log {log_path}")
    outcome = supervise.run_all(processes)
    for line in supervise.report(outcome):
        say(line)
    return outcome.code
