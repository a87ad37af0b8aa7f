"""What every node of a run starts: its command (the entrypoint's `nodes.run` with --set and
extra arguments, as `exec --nodes` passes them) and its environment (the entrypoint's variables
plus the node contract); and the per-node plan `plan --nodes` prints without starting anything.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace

from envctl.nodes.contract import Contract
from envctl.nodes.launchers import node_command

RUN_ID_PLACEHOLDER = "RUN_ID"  # `plan` draws no run id: exec draws a new one each run

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class NodeCommand:
    argv: tuple[str, ...]
    variables: dict[str, str]  # the entrypoint's own (may hold secrets: never printed)
    workdir: str | None
    entry: object  # envctl.plan.Entrypoint (its single-node form)


def command_for(site, loaded, declared, entrypoint: str, sets: list[str], extra: list[str]) -> NodeCommand:
    """The node's command: the entrypoint's multi-node `nodes.run` when it has one (else its
    `run`), with --set and the extra arguments applied as exec applies them. Raises
    EnvctlError (exit 2) for a --set the entrypoint does not declare."""
    from envctl import execute
    from envctl.plan import _command

    entry = {e.name: e for e in site.plan.entrypoints}[entrypoint]
    if declared.nodes.run is not None:
        entry_used = replace(entry, argv=_command(declared.nodes.run, loaded.manifest.container.shell),
                             shell_line=isinstance(declared.nodes.run, str))
    else:
        entry_used = entry
    argv, variables = execute.apply_overrides(entry_used, list(sets), list(extra))
    return NodeCommand(tuple(argv), variables, entry.workdir, entry)


def expand_known(text: str, env: dict[str, str]) -> str:
    """`text` with `$NAME`, `${NAME}` and `${NAME:-default}` replaced where NAME is in `env`
    (others left as written): the command as it reads on that node, for showing only."""
    def one(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        return env.get(name, match.group(0))
    return _REFERENCE.sub(one, text)


def node_plans(contract: Contract, commands: list[NodeCommand], launcher: str,
               shared: dict[str, str] | None = None) -> list[dict]:
    """One dict per node, rank order: rank, host, address, interface, the master, the command
    as given and as it reads with the contract, the launcher's own per-node line (what its
    multi-node runner would start there) and the contract's variables with `shared` (what exec
    adds for every node: RANK_TABLE_FILE), never the entrypoint's own, which may hold tokens."""
    plans = []
    for rank, (node, command) in enumerate(zip(contract.nodes, commands)):
        env = {**contract.env(rank), **(shared or {})}
        plans.append({
            "rank": rank, "host": node.name, "address": node.address, "ifname": node.ifname,
            "source_ip": node.source_ip or node.address, "processes": node.processes,
            "master": {"addr": contract.master_addr, "port": contract.master_port},
            "command": list(command.argv),
            "command_on_node": [expand_known(word, env) for word in command.argv],
            "launcher": launcher, "launcher_command": list(node_command(launcher, contract, rank)),
            "workdir": command.workdir, "env": env,
        })
    return plans


def lines(plans: list[dict]) -> list[str]:
    """plan --nodes in words, node by node."""
    out = []
    for p in plans:
        out.append(f"node {p['rank']} {p['host']}: address {p['address']} on {p['ifname'] or '?'}, "
                   f"{p['processes']} process(es), master {p['master']['addr']}:{p['master']['port']}")
        argv = p["command_on_node"]
        if len(argv) >= 3 and argv[-2] == "-c" and "\n" in argv[-1].strip():  # a shell script: its lines as written
            out.append(f"  runs      {shlex.join(argv[:-1])} with this script:")
            out += [f"            {line}" for line in argv[-1].rstrip("\n").splitlines()]
        else:
            out.append(f"  runs      {shlex.join(argv)}")
        if p["launcher_command"]:
            out.append(f"  launcher  {shlex.join(p['launcher_command'])} ...")
        for key in sorted(p["env"]):
            value = p["env"][key].replace("\n", ",")  # ENVCTL_NODE_IPS holds one address a line
            out.append(f"  env       {key}={value}")
    return out
