"""Commands about environments on a host: up, exec, shell, down, doctor (status and logs, which
only look, are in cli_runs.py).

The engine-facing modules (docker-py, requests) are imported inside the commands that use them,
so that manifest commands start in a fraction of the time.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from envctl.cli_app import CARD_COUNT_HELP, SHARE_HELP, app, card_request, print_plans, say
from envctl.cli_vars import given, var_option
from envctl.cli_remote import (accept_option, each_host, host_option, inventory_option, remote_options, single_target,
                               ssh_config_option, with_host_cards)
from envctl.errors import EXIT_HOST_NOT_READY, EXIT_MANIFEST_INVALID, EXIT_USAGE, EnvctlError
from envctl import runtime_env
from envctl.runtime_env import ENV_FILE_HELP


@app.command()
def up(
    name: Optional[str] = typer.Argument(None, help="NAME, NAME:VARIANT, NAME:A+B or a manifest path (not with --plan)"),
    vars: Optional[List[str]] = var_option(),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to use: 0,1 or 0-3 or 0,2-3 (overrides device.cards)"),
    card_count: Optional[int] = typer.Option(None, "--card-count", help=CARD_COUNT_HELP),
    share_cards: bool = typer.Option(False, "--share-cards", help=SHARE_HELP),
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
    env_files: Optional[List[Path]] = typer.Option(None, "--env-file", help=ENV_FILE_HELP),
) -> None:
    """Bring an environment up: driver check, devices, artifacts, image, container, setup.
    Refused (exit 5) when it would recreate a container in which work runs, unless --force."""
    from envctl import apply
    from envctl.planning import engine_if_any, plan_on
    from envctl.progress import ByteProgress

    recording = _quick_recording(name)
    loaded, options, saved = _what_to_apply(name, plan_file, card_request(cards, card_count), skip_driver_check, force,
                                            share_cards, given(vars))
    # A decision about now, as --force is (a saved plan keeps names and states, never values).
    options = dataclasses.replace(options, env_files=tuple(map(str, env_files or ())))
    runtime_env.for_manifest(loaded, options.env_files)  # a bad env file stops here, before any host
    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    plans, reports = {}, {}

    def work(host, echo) -> str:
        from envctl.observe import engine_round_ahead

        host_options = with_host_cards(options, host)
        if dry_run:
            engine_round_ahead(host, loaded)  # the plan's first engine round, behind the API version's
            plans[host.name] = plan_on(host, loaded, host_options, *engine_if_any(host))
            blockers, needs = plans[host.name].blockers, plans[host.name].needs
            return ("blocked: " + "; ".join(blockers) if blockers else "needs: " + "; ".join(needs) if needs
                    else "plan only")
        from envctl.artifact_steps import open_sessions_ahead
        from envctl.card_lock import CardsTaken

        engine_round_ahead(host, loaded)  # the plan's first engine round, behind the API version's
        open_sessions_ahead(host, loaded)  # the pushes a fresh host will likely get: their sessions opened now
        for attempt in range(CARD_ATTEMPTS):
            the_plan = plan_on(host, loaded, host_options, host.engine())
            _check_saved(saved, plan_file, the_plan)
            try:
                with ByteProgress() as progress:
                    report = apply.up(host, loaded, the_plan, echo, progress, offline=offline,
                                      runtime=runtime_env.for_manifest(loaded, options.env_files, host=host))
                break
            except CardsTaken as taken:
                if attempt + 1 == CARD_ATTEMPTS:
                    raise
                # Another up took the chosen cards while this one prepared: plan again (what is
                # fetched and loaded stays), which chooses among the cards still free.
                echo(f"cards      {taken.message}; planning again")
        reports[host.name] = _report_json(the_plan, report)
        if recording is not None:
            recording.note(host, loaded, the_plan, report)
        entries = ", ".join(e.name for e in the_plan.entrypoints) or "none"
        where = f" --host {host.name}" if remote.wanted else ""
        echo(f"ready      {the_plan.container.name}: envctl exec ENTRYPOINT --env {the_plan.container.name}{where} "
             f"(entrypoints: {entries})")
        ran = sum(1 for s in report.setup if s.action == "ran")
        return f"{the_plan.container.name} {report.container.action}, image {report.image.action}, {ran} setup step(s) ran"

    from envctl.progress import load_display  # a push's bars, loaded while a server's handshake runs

    code = each_host(remote, work, "up " + loaded.manifest.name, while_opening=load_display)
    if recording is not None:
        recording.finish(code)
    if dry_run:
        print_plans(plans, as_json, keyed=remote.wanted)
        # As plan: not ready (a blocker, something to provide, an engine not asked) is exit 5.
        raise typer.Exit(code or (EXIT_HOST_NOT_READY if any(not p.ready for p in plans.values()) else 0))
    if as_json:  # one host's report, or one per host named
        shown = reports if remote.wanted else next(iter(reports.values()))
        typer.echo(json.dumps(shown, indent=2, ensure_ascii=False))
    raise typer.Exit(code)


def _quick_recording(name):
    """The record of a no-op for the quick path (envctl/quick_up.py), watched for in the forms
    it answers alone: `up NAME`, and `up NAME --host H` with no other option."""
    from envctl.quick_up import answered_form

    if name is None or sys.argv[2:3] != [name] or not answered_form(sys.argv[1:]):
        return None
    from envctl.quick_up_record import Recording

    return Recording.start(sys.argv[1:])


CARD_ATTEMPTS = 3  # plans made by one `up` when other ups keep taking the cards it chose


def _what_to_apply(name, plan_file, cards, skip_driver_check, force=False, share_cards=False, values=None):
    """The manifest and options to plan with: the command line's (`cards`: as card_request read
    them; `values`: the --var values), or a saved plan's (--force is given again with --plan: it
    is a decision about now, not part of the saved plan's options)."""
    from envctl.manifest.loader import load
    from envctl.plan import Options

    if plan_file is None:
        if name is None:
            raise EnvctlError("up needs NAME (or --plan FILE)", exit_code=EXIT_USAGE)
        return load(name, vars=values), Options(cards=cards, skip_driver_check=skip_driver_check, force=force,
                                   share_cards=share_cards), None
    from envctl import saved_plans

    if name is not None or cards is not None or skip_driver_check or share_cards or values:
        raise EnvctlError("with --plan, the plan file says what to bring up: drop NAME, --var, --cards, --card-count, "
                          "--share-cards and --skip-driver-check", exit_code=EXIT_USAGE)
    saved = saved_plans.read(plan_file)
    kept = saved["options"]
    chosen = kept.get("cards")
    options = Options(cards=chosen if isinstance(chosen, int) or chosen is None else tuple(chosen),
                      skip_driver_check=bool(kept.get("skip_driver_check")), force=force,
                      share_cards=bool(kept.get("share_cards")))
    return load(saved["manifest_file"], variant=saved.get("variant"), vars=saved.get("vars")), options, saved


def _check_saved(saved, plan_file, the_plan) -> None:
    if saved is None:
        return
    from envctl import saved_plans
    from envctl.render import plan_json

    saved_plans.check(plan_file, the_plan.host, saved["plans"].get(the_plan.host), json.loads(plan_json(the_plan)))


def _report_json(the_plan, report) -> dict:
    from envctl.summary import planned_actions, summary

    return {"host": the_plan.host, "summary": summary(the_plan),
            "planned": [list(a) for a in planned_actions(the_plan)], "executed": [list(a) for a in report.executed]}


def _plan_for(env, host, baked_for: frozenset | None = None):
    """The plan of a running environment on its host, from the manifest it was created from.
    `baked_for`: the manifests the engine holds baked images of, when the caller read them
    (else asked here when needed)."""
    from envctl.manifest.loader import load
    from envctl.plan import Options
    from envctl.planning import plan_on

    if not env.manifest_file:
        raise EnvctlError(f"{env.name} carries no manifest file label; recreate it with `envctl up`")
    try:
        loaded = load(env.manifest_file, variant=env.variant, vars=env.vars)
    except EnvctlError as exc:
        if not env.vars or exc.exit_code != EXIT_USAGE:
            raise
        # The values are the environment's, not this command line's: say so, and how to move on.
        # Exit 3: the manifest, as this environment resolves it, is not valid any more.
        raise EnvctlError(f"{env.name} was brought up with {' '.join(f'--var {k}={v}' for k, v in env.vars.items())}, "
                          f"which its manifest no longer takes: {exc.message}",
                          hint=f"bring it up from the manifest as it is now: `envctl up {env.reference}`",
                          exit_code=EXIT_MANIFEST_INVALID) from None
    # Its own cards, as its label names them: nothing is chosen, so who else holds cards is not read.
    options = Options(cards=env.cards or None, skip_driver_check=True)
    # First without the engine: what exec and shell take from the plan (entrypoints, cards, the
    # working directory) is the manifest's and the host's. The engine adds to the container's
    # spec only a baked image (envctl bake) in place of image.ref: when the engine holds none
    # for this manifest and the engine-less spec is the one the container was created with, the
    # full plan would find it unchanged too. One request (the baked images, or none when the
    # caller listed them) instead of eight: on an SSH host, a round trip each.
    the_plan = plan_on(host, loaded, options, None, holders=False)
    if the_plan.container.config_hash() == env.config_hash:
        if baked_for is None:
            baked_for = _baked_for(host.engine())
        if loaded.manifest.name not in baked_for:
            return the_plan
    the_plan = plan_on(host, loaded, options, host.engine(), holders=False)
    if the_plan.container.config_hash() != env.config_hash:
        again = "".join(f" --var {k}={v}" for k, v in env.vars.items())
        say(f"warning: {env.manifest_file} changed since {env.name} was created; `envctl up {env.reference}{again}` applies it")
    return the_plan


def _baked_for(engine) -> frozenset:
    """The manifests the engine holds images `envctl bake` made for (one request)."""
    from envctl.containers import LABEL_BAKED_FOR

    return frozenset((image.get("Labels") or {}).get(LABEL_BAKED_FOR)
                     for image in engine.api.images(filters={"label": LABEL_BAKED_FOR}))


def _listing(host):
    """(environments' container summaries, manifests with baked images) of an SSH host's engine,
    both asked at once on one connection to its forwarded socket (engine_socket.Pipelined, the
    standard library alone): one round trip for both, and no docker-py to import. None when
    that socket does not answer so (the caller asks through host.engine(), which says why)."""
    from envctl import engine_socket
    from envctl.containers import LABEL_BAKED_FOR, LABEL_MANIFEST
    from envctl.quick_exec import listing_read, listing_targets  # the quick path asks the same
    from envctl.remote.ssh import trace

    try:
        path = host.connection.forward_socket(host.docker_socket)
    except EnvctlError:
        return None
    asked = listing_targets()
    for (what, _query), label in zip(asked, (LABEL_MANIFEST, LABEL_BAKED_FOR)):
        trace("api", host.name, ["GET", what, label])
    try:
        with engine_socket.Pipelined(path) as engine:
            return listing_read(engine.get(asked))
    except engine_socket.EngineUnanswered:
        return None


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
    nodes: Optional[List[str]] = typer.Option(None, "--nodes", help="run once across these hosts together, rank = order "
                                              "given (names, groups or ranges, as --hosts); the entrypoint needs nodes:"),
    master_addr: Optional[str] = typer.Option(None, "--master-addr", help="with --nodes: the master's data-plane IPv4 address"),
    master_port: Optional[int] = typer.Option(None, "--master-port", min=1, max=65535, help="with --nodes: the master port (default: the "
                                              "launcher's, moved to a free one on the master)"),
    rank_table: bool = typer.Option(False, "--rank-table", help="with --nodes on Ascend: build the HCCL rank table (v1.0) "
                                    "from hccn_tool on every node, set RANK_TABLE_FILE"),
    detach: bool = typer.Option(False, "--detach", "-d", help="run it in the background (a server): return once its "
                                "ready: holds, print where it serves and its log; `envctl stop ENTRY` ends it"),
    env_files: Optional[List[Path]] = typer.Option(None, "--env-file", help=ENV_FILE_HELP),
) -> None:
    """Run an entrypoint in its environment's container; exits with the entrypoint's code.
    With --nodes, one run across several hosts: every node gets the ENVCTL_* node contract.
    With --detach, it keeps running after envctl returns (exit 0 once ready, 1 when it is not)."""
    import os

    from envctl import environments, execute

    if detach and nodes:
        raise EnvctlError("--detach runs one server in one environment; a run across --nodes stays attached",
                          exit_code=EXIT_USAGE)
    if nodes:
        if hosts:
            raise EnvctlError("give the hosts either with --nodes (one run across them) or --host, not both",
                              exit_code=EXIT_USAGE)
        from envctl.multinode.command import exec_on_nodes

        together = remote_options(nodes, ssh_config, inventory, accept_host_key)
        raise typer.Exit(exec_on_nodes(entrypoint, list(args or []), env, list(sets or []), together, master_addr, master_port,
                                       with_rank_table=rank_table))
    if master_addr or master_port or rank_table:
        raise EnvctlError("--master-addr, --master-port and --rank-table go with --nodes", exit_code=EXIT_USAGE)
    recording = _exec_recording(entrypoint)
    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    host = single_target(remote)
    on_ssh = getattr(host, "connection", None) is not None and not detach  # an SSH host: its own docker CLI
    # The command that will run the entrypoint there, started now: its channel opens meanwhile.
    session = execute.HostSession(host) if on_ssh else None
    # The list's summary says all a run needs of the container (a detached one inspects it).
    listing = None
    if on_ssh:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            asked = pool.submit(_listing, host)
            # Meanwhile (the listing waits on the network, without the GIL): the modules the plan needs.
            import envctl.manifest.loader, envctl.planning, envctl.artifact_steps, envctl.observe  # noqa: E401,F401
            listing = asked.result()
    if listing is not None:
        chosen, baked_for = environments.choose_listed(listing[0], env), listing[1]
    else:
        chosen, baked_for = environments.choose(host.engine(), env, inspect=detach), None
    the_plan = _plan_for(chosen, host, baked_for)
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
    argv, own = execute.apply_overrides(entry, list(sets or []), list(args or []))
    # The passed variables (container.pass_env), valued here: the entrypoint's own env wins.
    passed, loaded = _passed(chosen, env_files, host)
    variables = {**passed.values, **own}
    if detach:
        from envctl.cli_serve import exec_detached

        raise typer.Exit(exec_detached(host, remote.wanted, chosen, entry, argv, variables))
    tty = entry.interactive and sys.stdin.isatty() and sys.stdout.isatty()
    workspace = chosen.workspace
    log_file = execute.log_path(Path(workspace), entrypoint) if workspace and not tty else None
    invocation = execute.Invocation(chosen.name, argv, variables, entry.workdir, tty, log_file, entrypoint,
                                    masked=tuple(passed.secrets))
    # On an SSH host the run's own command writes the log as the output passes, unless values
    # are masked in it: then the masked output goes from here, over a session of its own.
    writer = host.log_writer(str(log_file)) if log_file is not None and (not on_ssh or invocation.masked) else None
    if recording is not None and on_ssh:
        recording.note_run(host, listing, chosen, invocation, own, passed, loaded)
    code = execute.run_on_host(invocation, session, writer) if on_ssh else None
    if recording is not None:
        recording.finish(code)
    if code is None:
        if writer is None and log_file is not None:
            writer = host.log_writer(str(log_file))
        code = execute.run(invocation, host.docker_cli_environ(os.environ), writer)
    if log_file is not None:
        say(f"log: {log_file}" + (f" on {host.name}" if remote.wanted else ""))
    raise typer.Exit(code)


def _passed(chosen, env_files, host=None):
    """The run-time-only variables of the environment's manifest (envctl/runtime_env.py
    RuntimeEnv), with its warnings (a name not set) said on stderr; and the manifest loaded
    (None without one)."""
    if not chosen.manifest_file:
        return runtime_env.RuntimeEnv(), None
    from envctl.manifest.loader import load

    loaded = load(chosen.manifest_file, variant=chosen.variant, vars=chosen.vars)
    runtime = runtime_env.for_manifest(loaded, tuple(map(str, env_files or ())), host=host)  # host: its pip mirror
    for line in runtime.warnings:
        say(f"warning: {line}")
    return runtime, loaded


def _exec_recording(entrypoint: str):
    """The record of this run's resolution for the quick path (envctl/quick_exec.py), watched
    for in the one form it answers: `exec ENTRY --host H`."""
    from envctl.quick_exec import answered_form

    if sys.argv[2:3] != [entrypoint] or not answered_form(sys.argv[1:]):
        return None
    from envctl.quick_exec_record import start

    return start(sys.argv[1:])


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

    host = single_target(remote_options(hosts, ssh_config, inventory, accept_host_key))
    chosen = environments.choose(host.engine(), env)
    the_plan = _plan_for(chosen, host)
    argv = ("sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi")
    invocation = execute.Invocation(chosen.name, argv, {}, the_plan.container.working_dir, sys.stdin.isatty(), None)
    raise typer.Exit(execute.run(invocation, host.docker_cli_environ(os.environ)))


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

    def work(host, echo) -> str:
        chosen = environments.choose(host.engine(), env, running_only=False)
        guarded_remove(host.engine(), chosen, echo)
        echo(f"removed {chosen.name}")
        if purge and chosen.workspace:
            host.remove_tree(chosen.workspace)
            echo(f"deleted workspace {chosen.workspace}")
        elif chosen.workspace:
            echo(f"kept workspace {chosen.workspace} (--purge deletes it)")
        return f"removed {chosen.name}"

    raise typer.Exit(each_host(remote_options(hosts, ssh_config, inventory, accept_host_key), work, "down"))


@app.command()
def doctor(
    name: Optional[str] = typer.Argument(None, help="a manifest to check the host against"),
    vars: Optional[List[str]] = var_option(),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to check"),
    card_count: Optional[int] = typer.Option(None, "--card-count", help="how many free cards to check for"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
    nodes: Optional[List[str]] = typer.Option(None, "--nodes", help="check these hosts can run one run together, rank = "
                                              "order given (the preflight of exec --nodes); NAME: their environment"),
    entrypoint: Optional[str] = typer.Option(None, "--entrypoint", "-e", help="with --nodes: the entrypoint to run "
                                             "(its launcher's master port)"),
    master_addr: Optional[str] = typer.Option(None, "--master-addr", help="with --nodes: the master's data-plane IPv4 address"),
    master_port: Optional[int] = typer.Option(None, "--master-port", min=1, max=65535, help="with --nodes: the master port"),
) -> None:
    """Is this host (or are the hosts named) ready? Exit 5 when a check fails. With --nodes: can
    these hosts run one run together (a table, one line per node)?"""
    from envctl.doctor import diagnose
    from envctl.manifest.loader import load
    from envctl.plan import Options

    if nodes:
        if hosts or cards:
            raise EnvctlError("doctor --nodes checks the environments already up: drop --host and --cards",
                              exit_code=EXIT_USAGE)
        from envctl.multinode.views import doctor_nodes

        together = remote_options(nodes, ssh_config, inventory, accept_host_key)
        raise typer.Exit(doctor_nodes(together, name, entrypoint, master_addr, master_port, as_json))
    if entrypoint or master_addr or master_port:
        raise EnvctlError("--entrypoint, --master-addr and --master-port go with --nodes", exit_code=EXIT_USAGE)
    if vars and (nodes or not name):
        raise EnvctlError("--var sets the vars of the manifest named, for the checks without --nodes: give NAME, "
                          "drop --nodes", exit_code=EXIT_USAGE)
    loaded = load(name, vars=given(vars)) if name else None
    options = Options(cards=card_request(cards, card_count))
    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    results: dict[str, list] = {}

    def work(host, echo) -> str:
        results[host.name] = diagnose(host, loaded, options, host.environ(), engine=host.engine, free_at=host.free_bytes)
        failed = [c.name for c in results[host.name] if c.status == "fail"]
        if failed and remote.wanted:  # named hosts: the summary table says which is not ready
            raise EnvctlError(f"not ready: {', '.join(failed)}", exit_code=EXIT_HOST_NOT_READY)
        return "ready"

    outcomes: list = []
    try:
        code = each_host(remote, work, "doctor", outcomes)
    finally:  # the checks are printed also when a single host is not ready (and raises)
        if as_json:
            shown = results if remote.wanted else next(iter(results.values()), [])
            typer.echo(json.dumps(shown, default=lambda c: c.__dict__, indent=2))
        for host, checks in list(results.items()) if not as_json else ():  # a copy: after Ctrl-C hosts may still add
            if len(results) > 1:
                typer.echo(f"# {host}")
            _print_checks(checks, typer.echo)
    # 5 when every failure is a host that answered but is not ready; 7 when one did not answer
    only_not_ready = all(r.exit_code == EXIT_HOST_NOT_READY for r in outcomes if not r.ok)
    not_ready = any(c.status == "fail" for checks in results.values() for c in checks)
    raise typer.Exit(EXIT_HOST_NOT_READY if (code and only_not_ready) or (not code and not_ready) else code)


def _print_checks(checks, echo) -> None:
    width = max(len(c.name) for c in checks)
    for c in checks:
        echo(f"{c.status.upper():<5} {c.name:<{width}}  {c.detail}")
