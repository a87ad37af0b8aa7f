"""`envctl exec ENTRYPOINT --nodes lab1,lab2`: one run across several hosts.

Steps, in order, nothing started before the last: open every node (SSH, host keys verified, as
--hosts does) and find its running environment; refuse an entrypoint without `nodes:`; the
preflight table (exit 5 on a blocker); the master address, interfaces and one free port; the
contract written into every node's per-run directory; then every node's launcher at once
(envctl.multinode.supervise).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from envctl.cli_app import say
from envctl.errors import EXIT_HOST_NOT_READY, EXIT_USAGE, EnvctlError
from envctl.multinode import prepare, supervise


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


def _find(rank: int, entry, remote, env_name: str | None):
    from envctl import environments
    from envctl.cli_lifecycle import _plan_for
    from envctl.cli_remote import open_entry

    host = open_entry(entry, remote)
    environment = environments.choose(host.engine(), env_name)
    site = prepare.NodeSite(rank, entry, host, environment, _plan_for(environment, host))
    site.image_id = environment.container.attrs.get("Image")
    site.manifest_digest = prepare.manifest_digest(environment.manifest_file)
    return site


def open_nodes(remote, env_name: str | None) -> list[prepare.NodeSite]:
    """Every node, rank = order given; two or more distinct hosts, each reached at once."""
    from envctl.cli_remote import entries

    chosen = entries(remote)
    if len(chosen) < 2:
        raise EnvctlError(f"--nodes needs two or more hosts, got {len(chosen)} ({', '.join(e.name for e in chosen)})",
                          hint="for one host use --host", exit_code=EXIT_USAGE)
    with ThreadPoolExecutor(max_workers=min(16, len(chosen))) as pool:
        return list(pool.map(lambda pair: _find(pair[0], pair[1], remote, env_name), enumerate(chosen)))


def multi_node_entry(site: prepare.NodeSite, entrypoint: str):
    """The manifest's entrypoint and its `nodes:`; refuses one that cannot run on several nodes."""
    from envctl.manifest.loader import load

    loaded = load(site.environment.manifest_file, variant=site.environment.variant)
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
                  master_addr: str | None, master_port: int | None) -> int:
    from envctl import execute
    from envctl.plan import _command

    sites = open_nodes(remote, env_name)
    loaded, declared = multi_node_entry(sites[0], entrypoint)
    rows = prepare.preflight(sites)
    for line in prepare.table(rows):
        say(line)
    if any(row.problems for row in rows):
        raise EnvctlError("the nodes cannot run together (preflight above)", exit_code=EXIT_HOST_NOT_READY)
    nodes = prepare.choose_network(sites, master_addr)
    port = prepare.master_port(sites[0].host, declared.nodes.launcher, dict(declared.params), master_port)
    contract = prepare.make_contract(nodes, port, entrypoint, loaded.manifest.device.kind)
    say(f"run {contract.run_id}: master {contract.master_addr}:{contract.master_port}, "
        f"{contract.nnodes} nodes, {contract.world_size} processes")
    prepare.write_run_dirs(sites, contract)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    processes = []
    for site, node in zip(sites, contract.nodes):
        entries = {e.name: e for e in site.plan.entrypoints}
        entry = entries[entrypoint]
        argv, variables = execute.apply_overrides(entry, list(sets), list(extra))
        if declared.nodes.run is not None:  # the multi-node form of the command, with the same extra arguments
            from dataclasses import replace

            multi = replace(entry, argv=_command(declared.nodes.run, loaded.manifest.container.shell),
                            shell_line=isinstance(declared.nodes.run, str))
            argv, variables = execute.apply_overrides(multi, list(sets), list(extra))
        log_path = f"{site.environment.workspace}/logs/{entrypoint}-{stamp}-node{site.rank}.log"
        log = site.host.log_writer(log_path) or _LocalLog(log_path)
        processes.append(supervise.NodeProcess(
            site.rank, site.name, site.environment.name, argv, {**variables, **contract.env(site.rank)}, entry.workdir,
            site.host.docker_cli_environ(os.environ), log, log_path, entrypoint))
        say(f"[{site.rank} {site.name}] interface {node.ifname}, address {node.address}, log {log_path}")
    outcome = supervise.run_all(processes)
    for line in supervise.report(outcome):
        say(line)
    return outcome.code
