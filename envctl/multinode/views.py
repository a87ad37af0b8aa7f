"""`doctor --nodes` and `plan NAME --nodes --entrypoint E`: the preflight of a run across nodes
alone, and what `exec --nodes` would start on each node, without starting anything.

Both print the preflight table (envctl.multinode.preflight) and return 5 when it blocks. Their
--json: doctor's is the preflight (`blocked`, `master`, `nodes`: one object per table line,
`problems`); plan's adds `entrypoint`, `launcher`, `run_id` (null: exec draws one per run;
the variables show RUN_ID in its place) and `plan`: one object per node
(envctl.multinode.nodeplan), and with --rank-table `rank_table`: the HCCL rank table exec
would write.
"""

from __future__ import annotations

import json
import shlex

import typer

from envctl.errors import EXIT_HOST_NOT_READY, EXIT_USAGE, EnvctlError
from envctl.multinode import nodeplan, preflight, rank_table
from envctl.manifest.interpolate import looks_secret
from envctl.nodes.contract import build_contract
from envctl.render import redact, redact_tree


def doctor_nodes(remote, env_name: str | None, entrypoint: str | None, master_addr: str | None,
                 master_port: int | None, as_json: bool) -> int:
    """The preflight of `exec ENTRYPOINT --nodes ...` (with `entrypoint`: its launcher's port,
    and an entrypoint that cannot run on several nodes refused); returns the exit code."""
    if entrypoint:
        check, _, _ = preflight.for_entrypoint(remote, env_name, entrypoint, master_addr, master_port)
    else:
        check = preflight.run(preflight.open_nodes(remote, env_name), master_addr=master_addr, master_port=master_port)
    if as_json:
        typer.echo(json.dumps(check.as_dict(), indent=2))
    else:
        for line in check.table():
            typer.echo(line)
        typer.echo("blocked: the nodes cannot run together" if check.blocked else "ready: the nodes can run together")
    return EXIT_HOST_NOT_READY if check.blocked else 0


def plan_nodes(remote, reference: str, entrypoint: str | None, master_addr: str | None, master_port: int | None,
               sets: list[str], as_json: bool, extra: list[str] | None = None, with_rank_table: bool = False) -> int:
    """What `exec ENTRYPOINT --nodes ... --env REFERENCE [--rank-table] [-- extra]` would start
    on each node. With `with_rank_table`, every node's hccn_tool is asked and checked as exec
    does (reading only; its problems: exit 5) and RANK_TABLE_FILE is among the variables; the
    table itself is in --json's `rank_table`."""
    if not entrypoint:
        raise EnvctlError("plan --nodes shows what exec --nodes would run: name the entrypoint with --entrypoint E",
                          exit_code=EXIT_USAGE)
    extra = list(extra or [])
    check, loaded, declared = preflight.for_entrypoint(remote, reference, entrypoint, master_addr, master_port)
    hidden = _secrets(loaded, sets)
    if not as_json:
        for line in check.table():
            typer.echo(line)
    plans: list[dict] = []
    table = None
    if not check.blocked:
        contract = build_contract(check.nodes, check.port, nodeplan.RUN_ID_PLACEHOLDER, loaded.manifest.device.kind)
        shared = {}
        if with_rank_table:  # its lines (and a refusal) after the table; with --json on stderr
            text, _ = rank_table.build(check.sites, contract, loaded.manifest.device.kind,
                                       lambda line: typer.echo(line, err=as_json))
            table, shared = json.loads(text), rank_table.variables(contract)
        commands = [nodeplan.command_for(site, loaded, declared, entrypoint, sets, extra) for site in check.sites]
        plans = nodeplan.node_plans(contract, commands, declared.nodes.launcher, shared)
    if as_json:
        document = {"entrypoint": entrypoint, "launcher": declared.nodes.launcher if declared else None,
                    "run_id": None, **check.as_dict(), "plan": plans}
        if with_rank_table:
            document["rank_table"] = table
        typer.echo(json.dumps(redact_tree(document, hidden), indent=2))
    else:
        for line in nodeplan.lines(plans):
            typer.echo(redact(line, hidden))
        if plans:
            line = shlex.join(_exec_line(entrypoint, remote, sets, extra, with_rank_table))
            typer.echo(f"nothing started; `{redact(line, hidden)}` "
                       f"runs this (with a run id of its own in place of {nodeplan.RUN_ID_PLACEHOLDER})")
    return EXIT_HOST_NOT_READY if check.blocked else 0


def _secrets(loaded, sets: list[str]) -> frozenset[str]:
    """Values never shown: those the manifest took from secret-looking variables (as the one-host
    plan hides them, envctl.render) and the values of --set for a secret-looking parameter
    (`--set hub_token=...`), which the commands and the exec line would otherwise carry."""
    given = {value for key, sep, value in (item.partition("=") for item in sets) if sep and looks_secret(key) and value}
    return frozenset(getattr(loaded, "secrets", None) or ()) | frozenset(given)


def _exec_line(entrypoint: str, remote, sets: list[str], extra: list[str], with_rank_table: bool) -> list[str]:
    """The exec command line plan --nodes stands for."""
    words = ["envctl", "exec", entrypoint, "--nodes", ",".join(remote.hosts)]
    words += [w for s in sets for w in ("--set", s)]
    words += ["--rank-table"] if with_rank_table else []
    return words + (["--", *extra] if extra else [])
