"""Commands about environments on a host: up, exec, shell, status, logs, down, doctor.

The engine-facing modules (docker-py, requests) are imported inside the commands that use them,
so that manifest commands start in a fraction of the time.
"""

from __future__ import annotations

import difflib
import json
import shutil
import sys
from pathlib import Path
from typing import List, Optional

import typer

from envctl.cli_app import app, engine_if_any, local_host, parse_cards, plan_here, say
from envctl.cli_remote import (RemoteOptions, accept_option, host_option, inventory_option, on_hosts, remote_options,
                               single_target, ssh_config_option, with_host_cards)
from envctl.errors import EXIT_HOST_NOT_READY, EXIT_NOT_FOUND, EXIT_USAGE, EnvctlError
from envctl.manifest.loader import load
from envctl.plan import Options
from envctl.render import plan_json, plan_text


@app.command()
def up(
    name: Optional[str] = typer.Argument(None, help="NAME, NAME:VARIANT or a manifest path (not with --plan)"),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to use: 0,1 or 0-3 or 0,2-3 (overrides device.cards)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and change nothing"),
    skip_driver_check: bool = typer.Option(False, "--skip-driver-check", help="do not stop on a driver mismatch"),
    offline: bool = typer.Option(False, "--offline", help="use the artifact cache only; say what is missing"),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="apply exactly this saved plan (`envctl plan NAME -o FILE`), "
                                                                  "or refuse and say what changed since"),
    as_json: bool = typer.Option(False, "--json", help="print what was planned and what was executed as JSON"),
    force: bool = typer.Option(False, "--force", help="recreate the container even while entrypoints or other processes "
                                                      "run in it (they are killed)"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Bring an environment up: driver check, devices, artifacts, image, container, setup.
    Refused (exit 5) when it would recreate a container in which work runs, unless --force."""
    from envctl import apply
    from envctl.engine import connect
    from envctl.progress import ByteProgress

    loaded, options, saved = _what_to_apply(name, plan_file, cards, skip_driver_check, force)
    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    if remote.wanted:
        raise typer.Exit(_up_remote(remote, loaded, options, dry_run, offline, saved, plan_file, as_json))
    if dry_run:
        client, problem = engine_if_any()
        the_plan = plan_here(loaded, options, client, problem)
        typer.echo(plan_json(the_plan) if as_json else plan_text(the_plan), nl=not as_json)
        raise typer.Exit(EXIT_HOST_NOT_READY if the_plan.blockers else 0)
    client = connect()
    the_plan = plan_here(loaded, options, client)
    _check_saved(saved, plan_file, the_plan)
    with ByteProgress() as progress:
        report = apply.up(client, loaded, the_plan, say, progress, offline=offline)
    entries = ", ".join(e.name for e in the_plan.entrypoints) or "none"
    say(f"ready      {the_plan.container.name}: envctl exec ENTRYPOINT --env {the_plan.container.name} (entrypoints: {entries})")
    if as_json:
        typer.echo(json.dumps(_report_json(the_plan, report), indent=2, ensure_ascii=False))


def _what_to_apply(name, plan_file, cards, skip_driver_check, force=False):
    """The manifest and options to plan with: the command line's, or a saved plan's (--force is
    given again with --plan: it is a decision about now, not part of the saved plan's options)."""
    if plan_file is None:
        if name is None:
            raise EnvctlError("up needs NAME (or --plan FILE)", exit_code=EXIT_USAGE)
        return load(name), Options(cards=parse_cards(cards), skip_driver_check=skip_driver_check, force=force), None
    from envctl import saved_plans

    if name is not None or cards is not None or skip_driver_check:
        raise EnvctlError("with --plan, the plan file says what to bring up: drop NAME, --cards and --skip-driver-check",
                          exit_code=EXIT_USAGE)
    saved = saved_plans.read(plan_file)
    kept = saved["options"]
    options = Options(cards=tuple(kept["cards"]) if kept.get("cards") is not None else None,
                      skip_driver_check=bool(kept.get("skip_driver_check")), force=force)
    return load(saved["manifest_file"], variant=saved.get("variant")), options, saved


def _check_saved(saved, plan_file, the_plan) -> None:
    if saved is None:
        return
    from envctl import saved_plans

    saved_plans.check(plan_file, the_plan.host, saved["plans"].get(the_plan.host), json.loads(plan_json(the_plan)))


def _report_json(the_plan, report) -> dict:
    from envctl.summary import planned_actions, summary

    return {"host": the_plan.host, "summary": summary(the_plan),
            "planned": [list(a) for a in planned_actions(the_plan)], "executed": [list(a) for a in report.executed]}


def _up_remote(remote: RemoteOptions, loaded, options: Options, dry_run: bool, offline: bool, saved=None, plan_file=None,
               as_json: bool = False) -> int:
    from envctl.progress import ByteProgress
    from envctl.remote.up import plan_remote, up_remote

    reports = {}

    def work(target, echo) -> str:
        host_options = with_host_cards(options, target)
        the_plan = plan_remote(target, loaded, host_options)
        if dry_run:
            echo(plan_text(the_plan).rstrip("\n"))
            return "blocked: " + "; ".join(the_plan.blockers) if the_plan.blockers else "plan only"
        _check_saved(saved, plan_file, the_plan)
        with ByteProgress() as progress:
            report = up_remote(target, loaded, the_plan, echo, progress, offline=offline)
        reports[target.name] = _report_json(the_plan, report)
        ran = sum(1 for s in report.setup if s.action == "ran")
        echo(f"ready      {the_plan.container.name}: envctl exec ENTRYPOINT --host {target.name}")
        return f"{the_plan.container.name} {report.container.action}, image {report.image.action}, {ran} setup step(s) ran"

    code = on_hosts(remote, work, "up " + loaded.manifest.name)
    if as_json and not dry_run:
        typer.echo(json.dumps(reports, indent=2, ensure_ascii=False))
    return code


@app.command()
def image(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT or a manifest path"),
    offline: bool = typer.Option(False, "--offline", help="use a cached tarball only"),
) -> None:
    """Make sure the manifest's image is on the engine (load or build it, as `up` would), and
    nothing else: for preparing a box before its artifacts are ready."""
    from envctl import apply
    from envctl.artifacts.cache import Cache
    from envctl.engine import connect, local_socket
    from envctl.image_step import ensure_image
    from envctl.images import IdentityCache
    from envctl.paths import cache_dir
    from envctl.progress import ByteProgress

    loaded = load(name)
    client = connect()
    the_plan = plan_here(loaded, Options(skip_driver_check=True), client)
    cache = Cache(cache_dir())
    with ByteProgress() as progress:
        tarball = apply.local_tarball(client, loaded, the_plan, cache, progress, offline)
        outcome = ensure_image(client, the_plan.image, tarball, IdentityCache(cache.root / "state" / "tarballs.json"), progress,
                               local_socket())
    say(f"image      {the_plan.image.ref}: {outcome.action}" + (f" ({outcome.note})" if outcome.note else ""))
    typer.echo(outcome.image_id)


@app.command()
def build(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT or a manifest path"),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to bake with (default: device.cards)"),
    skip_driver_check: bool = typer.Option(False, "--skip-driver-check", help="do not stop on a driver mismatch"),
) -> None:
    """Bake the image with the setup steps inside, tagged by the hash of its inputs; `up` then uses it."""
    from envctl import apply, bake
    from envctl.engine import connect
    from envctl.progress import ByteProgress

    loaded = load(name)
    client = connect()
    # force: a bake touches no container, so work running in one is no reason to refuse it.
    the_plan = plan_here(loaded, Options(cards=parse_cards(cards), skip_driver_check=skip_driver_check, force=True), client)
    if the_plan.baked:  # the inputs have not changed since the last bake
        ref, action = the_plan.baked, "present"
    else:
        with ByteProgress() as progress:
            base = apply.prepare(client, loaded, the_plan, say, progress)
        ref, action = bake.bake(client, the_plan, base.image_id, say)
    say(f"baked      {ref}: {action}")
    typer.echo(ref)


@app.command()
def save(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT or a manifest path"),
    output: Path = typer.Option(..., "-o", "--output", help="the tarball to write (.tar or .tar.gz)"),
) -> None:
    """Write the baked image as a tarball for air-gapped servers (load it there with `envctl load`)."""
    from envctl import bake
    from envctl.engine import connect

    loaded = load(name)
    client = connect()
    the_plan = plan_here(loaded, Options(skip_driver_check=True), client)
    if the_plan.baked is None:
        raise EnvctlError(f"{loaded.manifest.name} has no baked image for its current inputs on this host",
                          hint=f"run `envctl build {name}` first", exit_code=EXIT_NOT_FOUND)
    bake.save(client, the_plan.baked, output, say)


@app.command("load")
def load_command(tarball: Path = typer.Argument(..., help="a tarball written by `envctl save` or `docker save`")) -> None:
    """Load an image tarball into the engine, reading its identity from the tarball itself."""
    from envctl.engine import connect, local_socket
    from envctl.images import load_tarball, read_identity
    from envctl.progress import ByteProgress

    identity = read_identity(tarball)
    client = connect()
    with ByteProgress() as progress:
        load_tarball(client, tarball, progress(f"loading {tarball.name}", tarball.stat().st_size), local_socket())
    say(f"loaded     {', '.join(identity.repo_tags) or 'an untagged image'} ({identity.image_id})")


def _plan_for(env, client, target=None):
    """The plan of a running environment, from the manifest it was created from (on `target`
    when it is on a remote host)."""
    if not env.manifest_file:
        raise EnvctlError(f"{env.name} carries no manifest file label; recreate it with `envctl up`")
    loaded = load(env.manifest_file, variant=env.variant)
    options = Options(cards=env.cards or None, skip_driver_check=True)
    if target is not None:
        from envctl.remote.up import plan_remote

        the_plan = plan_remote(target, loaded, options)
    else:
        the_plan = plan_here(loaded, options, client)
    if the_plan.container.config_hash() != env.config_hash:
        say(f"warning: {env.manifest_file} changed since {env.name} was created; `envctl up {env.reference}` applies it")
    return the_plan


@app.command("exec")
def exec_command(
    entrypoint: str = typer.Argument(..., help="an entrypoint of the environment's manifest"),
    args: Optional[List[str]] = typer.Argument(None, help="extra arguments, after --"),
    env: Optional[str] = typer.Option(None, "--env", help="the environment (needed when several are up)"),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="key=value overriding a parameter; repeatable"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Run an entrypoint in its environment's container; exits with the entrypoint's code."""
    import os

    from envctl import environments, execute

    client, target = _engine(remote_options(hosts, ssh_config, inventory, accept_host_key))
    chosen = environments.choose(client, env)
    the_plan = _plan_for(chosen, client, target)
    entries = {e.name: e for e in the_plan.entrypoints}
    if entrypoint not in entries:
        close = difflib.get_close_matches(entrypoint, list(entries), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise EnvctlError(f"{chosen.reference} has no entrypoint '{entrypoint}'{hint}; entrypoints: {', '.join(entries) or 'none'}",
                          exit_code=EXIT_USAGE)
    entry = entries[entrypoint]
    if entry.problem:
        raise EnvctlError(entry.problem, exit_code=EXIT_HOST_NOT_READY,
                          hint=f"bring the environment up with more cards (envctl up {chosen.reference} --cards ...)")
    argv, variables = execute.apply_overrides(entry, list(sets or []), list(args or []))
    tty = entry.interactive and sys.stdin.isatty() and sys.stdout.isatty()
    workspace = chosen.workspace
    log_file = execute.log_path(Path(workspace), entrypoint) if workspace and not tty else None
    invocation = execute.Invocation(chosen.name, argv, variables, entry.workdir, tty, log_file, entrypoint)
    if target is None:
        code = execute.run(invocation)
    else:
        from envctl.remote.target import RemoteLog

        writer = RemoteLog(target.connection, str(log_file)) if log_file is not None else None
        code = execute.run(invocation, target.docker_cli_environ(os.environ), writer)
    if log_file is not None:
        say(f"log: {log_file}" + (f" on {target.name}" if target is not None else ""))
    raise typer.Exit(code)


def _engine(remote: RemoteOptions):
    """The Docker client of this host, or of the one remote host named (with its target)."""
    if remote.wanted:
        target = single_target(remote)
        return target.docker(), target
    from envctl.engine import connect

    return connect(), None


@app.command()
def shell(
    env: Optional[str] = typer.Option(None, "--env", help="the environment (needed when several are up)"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Open a shell in an environment's container."""
    import os

    from envctl import environments, execute

    client, target = _engine(remote_options(hosts, ssh_config, inventory, accept_host_key))
    chosen = environments.choose(client, env)
    the_plan = _plan_for(chosen, client, target)
    argv = ("sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi")
    invocation = execute.Invocation(chosen.name, argv, {}, the_plan.container.working_dir, sys.stdin.isatty(), None)
    raise typer.Exit(execute.run(invocation, target.docker_cli_environ(os.environ) if target else None))


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
    if remote.wanted:
        found: dict[str, list] = {}

        def work(target, echo) -> str:
            found[target.name] = _status_rows(target.docker())
            return f"{len(found[target.name])} environment(s)"

        code = on_hosts(remote, work, "status")
        rows = [{"host": host, **row} for host, host_rows in found.items() for row in host_rows]
    else:
        from envctl.engine import connect

        code, rows = 0, _status_rows(connect())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        typer.echo("no environments")
    for r in rows if not as_json else []:
        cards = ",".join(map(str, r["cards"])) or "-"
        where = f"{r['host']:<12} " if "host" in r else ""
        typer.echo(f"{where}{r['name']:<32} {r['status']:<8} cards {cards:<12} {r['manifest']}  ({r['image']})")
        for run in r["runs"]:
            typer.echo(f"{' ' * len(where)}  running {Run(**run).describe()}")
    raise typer.Exit(code)


def _status_rows(client) -> list[dict]:
    """One row per environment; `runs`: the work running in it (envctl/runs.py Run fields)."""
    from envctl import environments
    from envctl.runs import running_work

    return [{"name": e.name, "manifest": e.reference, "status": e.status, "cards": list(e.cards),
             "image": (e.container.attrs.get("Config") or {}).get("Image"), "manifest_file": e.manifest_file,
             "workspace": e.workspace, "runs": [r.as_dict() for r in running_work(client, e.container)]}
            for e in environments.all_environments(client)]


@app.command()
def logs(
    env: Optional[str] = typer.Argument(None, help="the environment (container name or manifest)"),
    entrypoint: Optional[str] = typer.Option(None, "--entrypoint", "-e", help="only this entrypoint's runs"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing what is appended"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Print the log of the latest entrypoint run (kept in the environment's workspace)."""
    from envctl import environments, execute

    client, target = _engine(remote_options(hosts, ssh_config, inventory, accept_host_key))
    chosen = environments.choose(client, env, running_only=False)
    if not chosen.workspace:
        raise EnvctlError(f"{chosen.name} has no workspace mount")
    pattern = f"{entrypoint}-*.log" if entrypoint else "*.log"
    if target is not None:
        from envctl.remote.logs import print_remote_log

        raise typer.Exit(print_remote_log(target, f"{chosen.workspace}/logs", pattern, follow))
    found = sorted(Path(chosen.workspace, "logs").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise EnvctlError(f"no logs yet in {chosen.workspace}/logs" + (f" for {entrypoint}" if entrypoint else ""),
                          exit_code=EXIT_NOT_FOUND)
    execute.print_file(found[-1], follow)


@app.command()
def down(
    env: str = typer.Argument(..., help="the environment (container name or manifest)"),
    purge: bool = typer.Option(False, "--purge", help="also delete its workspace (logs, outputs, writable copies)"),
    force: bool = typer.Option(False, "--force", help="remove it even while entrypoints or other processes run in it"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Remove an environment's container; the artifact cache and, unless --purge, the workspace stay.
    Refused (exit 5) while work runs in it (`envctl status` lists it), unless --force."""
    from envctl import environments, lifecycle
    from envctl.runs import refuse_running_work

    def guarded_remove(client, chosen, echo) -> None:
        stopped = refuse_running_work(client, chosen.container, chosen.name, "removing", f"envctl down {env}", force)
        lifecycle.remove(client, chosen.name)
        for run in stopped:
            echo(f"stopped {run.describe()}")

    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    if remote.wanted:
        def work(target, echo) -> str:
            chosen = environments.choose(target.docker(), env, running_only=False)
            guarded_remove(target.docker(), chosen, echo)
            echo(f"removed {chosen.name}")
            if purge and chosen.workspace:
                target.connection.check(["rm", "-rf", "--", chosen.workspace], "deleting the workspace")
                echo(f"deleted workspace {chosen.workspace}")
            return f"removed {chosen.name}"

        raise typer.Exit(on_hosts(remote, work, "down"))
    from envctl.engine import connect

    client = connect()
    chosen = environments.choose(client, env, running_only=False)
    workspace = chosen.workspace
    guarded_remove(client, chosen, say)
    say(f"removed {chosen.name}")
    if purge and workspace and Path(workspace).exists():
        shutil.rmtree(workspace)
        say(f"deleted workspace {workspace}")
    elif workspace:
        say(f"kept workspace {workspace} (--purge deletes it)")


@app.command()
def doctor(
    name: Optional[str] = typer.Argument(None, help="a manifest to check the host against"),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to check"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Is this host (or are the hosts named) ready? Exit 5 when a check fails."""
    from envctl.doctor import diagnose

    loaded = load(name) if name else None
    options = Options(cards=parse_cards(cards))
    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    if remote.wanted:
        from envctl.remote.doctor import diagnose_remote

        results: dict[str, list] = {}

        def work(target, echo) -> str:
            checks = diagnose_remote(target, loaded, options)
            results[target.name] = checks
            failed = [c.name for c in checks if c.status == "fail"]
            if failed:
                raise EnvctlError(f"not ready: {', '.join(failed)}", exit_code=EXIT_HOST_NOT_READY)
            return "ready"

        outcomes: list = []
        try:
            code = on_hosts(remote, work, "doctor", outcomes)
        finally:  # the checks are printed also when a single host is not ready (and raises)
            if as_json:
                typer.echo(json.dumps({h: [c.__dict__ for c in cs] for h, cs in results.items()}, indent=2))
            for host, checks in results.items() if not as_json else ():
                if len(results) > 1:
                    typer.echo(f"# {host}")
                _print_checks(checks, typer.echo)
        # 5 when every failure is a host that answered but is not ready; 7 when one did not answer
        only_not_ready = all(r.exit_code == EXIT_HOST_NOT_READY for r in outcomes if not r.ok)
        raise typer.Exit(EXIT_HOST_NOT_READY if code and only_not_ready else code)
    checks = diagnose(local_host(), loaded, options)
    if as_json:
        typer.echo(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        _print_checks(checks, typer.echo)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(EXIT_HOST_NOT_READY)


def _print_checks(checks, echo) -> None:
    width = max(len(c.name) for c in checks)
    for c in checks:
        echo(f"{c.status.upper():<5} {c.name:<{width}}  {c.detail}")
