"""`status` and `logs`: what runs in the environments envctl made, and what it printed.

Split from cli_lifecycle.py (which brings environments up, runs and removes them): these two
only look. Their command-table entries are in envctl/cli.py COMMANDS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from envctl.cli_app import app, say
from envctl.cli_remote import (accept_option, each_host, host_option, inventory_option, remote_options, single_target,
                               ssh_config_option)
from envctl.errors import EXIT_NOT_FOUND, EXIT_USAGE, EnvctlError
from envctl import runtime_env

@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """The environments envctl created on this host (or on the hosts named), with the work
    running in each: entrypoints (since when, pid in the container, log), `docker exec`s and
    background processes."""
    from envctl.runs import Run

    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    found: dict[str, list] = {}

    def work(host, echo) -> str:
        found[host.name] = _status_rows(host.engine())
        return f"{len(found[host.name])} environment(s)"

    code = each_host(remote, work, "status", probes=False)  # the engine alone: no probe round on the host
    # Rows name their host when hosts were named.
    rows = [{"host": host, **row} if remote.wanted else row for host, host_rows in found.items() for row in host_rows]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        typer.echo("no environments")
    for r in rows if not as_json else []:
        cards = ",".join(map(str, r["cards"])) or "-"
        where = f"{r['host']:<12} " if "host" in r else ""
        by = f"  by {r['user']}" if r.get("user") else ""  # who brought it up (envctl's label)
        given = "".join(f" --var {k}={v}" for k, v in r["vars"].items())
        typer.echo(f"{where}{r['name']:<32} {r['status']:<8} cards {cards:<12} {r['manifest']}{given}  ({r['image']}){by}")
        for run in r["runs"]:
            shown = Run(**{k: v for k, v in run.items() if k not in ("listening", "loopback_only")})  # detached runs, now
            typer.echo(f"{' ' * len(where)}  running {shown.describe()}")
            if run.get("detached"):  # a server from exec --detach: what it answers on, as the manifest declared it
                said = f"ready when {run['ready']}" if run.get("ready") else "declares no readiness"
                now = ", ".join(f":{port} {_listening_said(port, run)}" for port in run["ports"])
                typer.echo(f"{' ' * len(where)}    detached server: {said}{'; now ' + now if now else ''}; "
                           f"envctl stop {run['name']} --env {r['name']}")
    raise typer.Exit(code)


def _listening_said(port: int, run: dict) -> str:
    """How a detached run's port listens now, as status prints it."""
    if port not in run["listening"]:
        return "not listening"
    if port in run.get("loopback_only", ()):
        return "listening on loopback only (not reachable from outside the container)"
    return "listening"


def _status_rows(client) -> list[dict]:
    """One row per environment; `runs`: the work running in it (envctl/runs.py Run fields);
    `user`: who brought it up (None for containers made before envctl recorded it)."""
    from envctl import environments
    from envctl.containers import LABEL_USER
    from envctl.detach import listening_now
    from envctl.runs import running_work

    return [{"name": e.name, "manifest": e.reference, "vars": dict(e.vars), "status": e.status, "cards": list(e.cards),
             "user": (e.container.labels or {}).get(LABEL_USER),
             "image": (e.container.attrs.get("Config") or {}).get("Image"), "manifest_file": e.manifest_file,
             "workspace": e.workspace,
             # The list's own inspection of each container (docker-py's list inspects them): one
             # request per environment less, a round trip each on an SSH host.
             "runs": listening_now(client, e.name, running_work(client, e.container, e.container.attrs))}
            for e in environments.all_environments(client)]


@app.command()
def logs(
    env: Optional[str] = typer.Argument(None, help="the environment (container name or manifest), or an entrypoint "
                                                   "of the only one (or of --env's)"),
    entrypoint: Optional[str] = typer.Option(None, "--entrypoint", "-e", help="only this entrypoint's runs"),
    env_option: Optional[str] = typer.Option(None, "--env", help="the environment, when the argument is an entrypoint"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing what is appended"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
    nodes: Optional[List[str]] = typer.Option(None, "--nodes", help="the hosts of a run across nodes (as exec --nodes): "
                                              "every node's log, each line prefixed with rank and host"),
    run_id: Optional[str] = typer.Option(None, "--run", help="with --nodes: this run (default: the latest)"),
    list_runs: bool = typer.Option(False, "--runs", help="with --nodes: list the runs across nodes, newest first"),
    env_files: Optional[List[Path]] = typer.Option(None, "--env-file", help="an env file with values of the manifest's "
                                                   "container.pass_env, masked in what is printed (as exec takes it)"),
) -> None:
    """Print the log of the latest entrypoint run (kept in the environment's workspace), or of
    the entrypoint's run still running (a server started with exec --detach); -f follows it
    until that run ends (then says its exit code, on stderr), and returns at once for a run
    that has ended.
    `logs web -f` and `logs -e web -f` are the same when web is not an environment's name. With
    --nodes, every node's log of the latest run across them (or of --run). The values of the
    manifest's container.pass_env known here (environment, env files) are masked as printed:
    a detached run writes its log in the container, as the program printed it."""
    from envctl import environments
    from envctl.follow import watch_for as follow_run

    if nodes:
        if hosts:
            raise EnvctlError("give the hosts either with --nodes or --host, not both", exit_code=EXIT_USAGE)
        from envctl.multinode import node_logs

        sides = node_logs.open_sides(remote_options(nodes, ssh_config, inventory, accept_host_key), env)
        if list_runs:
            for line in node_logs.run_lines(sides, entrypoint):
                typer.echo(line)
            raise typer.Exit(0)
        raise typer.Exit(node_logs.show(sides, node_logs.choose_run(sides, entrypoint, run_id), follow))
    if run_id or list_runs:
        raise EnvctlError("--run and --runs go with --nodes", exit_code=EXIT_USAGE)
    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    host = single_target(remote)
    env, entrypoint = _env_or_entrypoint(host.engine(), env, entrypoint, env_option)
    chosen = environments.choose(host.engine(), env, running_only=False)
    if not chosen.workspace:
        raise EnvctlError(f"{chosen.name} has no workspace mount")
    from envctl.execute import log_pattern

    pattern = log_pattern(entrypoint)
    newest = _running_log(host.engine(), chosen, entrypoint) or host.newest(f"{chosen.workspace}/logs", pattern)
    if newest is None:
        where = f" on {host.name}" if remote.wanted else ""
        raise EnvctlError(f"no logs yet in {chosen.workspace}/logs{where}" + (f" for {entrypoint}" if entrypoint else ""),
                          exit_code=EXIT_NOT_FOUND)
    # -f ends once the run writing the log has ended (as docker logs -f with its container); a log
    # no run writes any more is printed and returned from at once.
    watch = follow_run(host.engine(), chosen.container, newest) if follow else None
    code = host.stream(newest, follow and watch is not None, _log_secrets(chosen, env_files), watch and watch.ended)
    if watch is not None and watch.ended():
        say(watch.said())
    raise typer.Exit(code)


def _log_secrets(chosen, env_files) -> frozenset[str]:
    """The values of the environment's passed secrets (container.pass_env, envctl/runtime_env.py)
    that this caller knows, for `logs` to mask. A credential-looking name without a value here
    cannot be masked: said on stderr, as is a manifest that cannot be read any more."""
    if not chosen.manifest_file:
        return frozenset()
    from envctl.manifest.interpolate import looks_secret
    from envctl.manifest.loader import load

    files = tuple(map(str, env_files or ()))
    try:
        runtime = runtime_env.for_manifest(load(chosen.manifest_file, variant=chosen.variant, vars=chosen.vars), files)
    except runtime_env.EnvFileError:
        raise  # an env file given here that cannot be read: the command line's mistake
    except EnvctlError as exc:
        say(f"warning: container.pass_env values are not masked in this log: {chosen.manifest_file} cannot be read "
            f"({exc.message.splitlines()[0]})")
        return frozenset()
    for variable in runtime.passed:
        if variable.state == "not set" and looks_secret(variable.name):
            say(f"warning: {variable.name} (container.pass_env) is not set here, so its value is not masked where a "
                f"detached run printed it: export it or give --env-file")
    return runtime.secrets


def _env_or_entrypoint(client, positional, entrypoint, env_option):
    """(environment, entrypoint) from `logs`' argument: an environment when it names one (as
    before), else an entrypoint, with --env (or the only environment)."""
    from envctl import environments

    if positional is None:
        return env_option, entrypoint
    if env_option is not None:
        if entrypoint is not None:
            raise EnvctlError("give the entrypoint either as the argument or with -e, not both", exit_code=EXIT_USAGE)
        return env_option, positional
    names = {name for e in environments.all_environments(client) for name in (e.name, e.manifest, e.reference)}
    if positional in names or entrypoint is not None:
        return positional, entrypoint
    return None, positional


def _running_log(client, chosen, entrypoint) -> str | None:
    """The log of `entrypoint`'s run still running in `chosen` (the latest started), if any."""
    from envctl.runs import running_work

    if not entrypoint:
        return None
    running = [r for r in running_work(client, chosen.container) if r.kind == "entrypoint" and r.name == entrypoint and r.log]
    return running[-1].log if running else None
