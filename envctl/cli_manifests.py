"""Commands about manifests: list, show, validate, schema, plan, version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from envctl import __version__
from envctl.cli_app import CARD_COUNT_HELP, SHARE_HELP, app, card_request, print_error, print_plans
from envctl.cli_vars import given, var_option
from envctl.cli_remote import (accept_option, each_host, host_option, inventory_option, remote_options, ssh_config_option,
                               with_host_cards)
from envctl.errors import EXIT_HOST_NOT_READY, EXIT_MANIFEST_INVALID, EXIT_USAGE, EnvctlError, ManifestError
from envctl.manifest import discovery
from envctl.runtime_env import ENV_FILE_HELP

if TYPE_CHECKING:
    from envctl.plan import Options

# The manifest loader and model (pydantic), yaml, the planner and the renderer are imported by the
# functions that use them: `envctl version` and `envctl plan --help` need none of them.


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List the manifests found, with device kind and description."""
    roots = discovery.search_roots()
    rows = []
    for found in discovery.list_manifests(roots):
        row = {"name": found.name, "path": str(found.path), "origin": found.root.origin,
               "shadowed_by": str(found.shadowed_by) if found.shadowed_by else None}
        try:
            # Described by its default variant, or its first one when it names no default.
            first = (variant_names(str(found.path), roots) or [None])[0]
            loaded = None if found.shadowed_by else _load_described(found.path, roots, first)
        except ManifestError as exc:
            row.update(kind=None, description=None, variants=[], valid=False, problems=len(exc.problems))
        except EnvctlError:
            row.update(kind=None, description=None, variants=[], valid=False, problems=1)
        else:
            m = loaded.manifest if loaded else None
            row.update(kind=m.device.kind if m else None, description=m.description if m else None,
                       variants=sorted(m.variants) if m else [], valid=bool(m))
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no manifests found; looked in " + ", ".join(str(r.path) for r in roots))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        if r["shadowed_by"]:
            status = f"(shadowed by {r['shadowed_by']})"
        elif not r["valid"]:
            status = f"INVALID ({r['problems']} problem(s)): envctl validate {r['path']}"
        else:
            variants = f" [variants: {', '.join(r['variants'])}]" if r["variants"] else ""
            status = f"{r['kind']:<5} {r['description']}{variants}"
        typer.echo(f"{r['name']:<{width}}  {status}  ({r['origin']})")


def _load_described(path, roots, first_variant):
    from envctl.manifest.loader import load

    try:
        return load(path, roots=roots)
    except ManifestError:
        if first_variant is None:
            raise
        return load(path, roots=roots, variant=first_variant)


@app.command()
def show(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT, NAME:A+B or a manifest path"),
    vars: Optional[List[str]] = var_option(),
    origin: bool = typer.Option(False, "--origin", help="say after each value which layer set it (profile, manifest, "
                                "variant, --var, the format's default) at which file:line, and what gave each ${...}"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable: the resolved manifest and every value's origin"),
) -> None:
    """Print the fully resolved manifest: profiles merged, variants applied, --var and variables expanded."""
    from envctl.artifacts.urls import redact_text
    from envctl.manifest import provenance
    from envctl.manifest.loader import load
    from envctl.manifest.overrides import describe, recorded
    from envctl.manifest.yamlsrc import dump
    from envctl.render import redact_tree

    loaded = load(name, vars=given(vars))
    data = loaded.manifest.model_dump(mode="json", exclude_none=True)
    data.pop("variants", None)
    # Signed query values and URL passwords in sources are credentials too (artifacts/urls.py).
    data = _redact_urls(redact_tree(data, loaded.secrets), redact_text)
    found = provenance.origins(data, loaded.trace)
    overrides = loaded.trace.overrides
    if as_json:
        document = {"name": loaded.manifest.name, "variant": loaded.manifest.variant, "file": str(loaded.file),
                    "vars_given": recorded(overrides), "manifest": data, "origins": provenance.as_json(found)}
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    typer.echo(f"# resolved from {loaded.file}" + (f" with {describe(overrides)}" if overrides else ""))
    text = dump(data)
    if origin:
        text = provenance.annotate(text, data, found, str(loaded.directory), overrides)
    typer.echo(text, nl=False)


def _redact_urls(value, redact_text):
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_urls(v, redact_text) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_urls(v, redact_text) for v in value]
    return value


@app.command()
def validate(references: Optional[List[str]] = typer.Argument(None, help="NAMEs or paths; default: every manifest found"),
             vars: Optional[List[str]] = var_option()) -> None:
    """Check manifests; every problem at once, with file:line:column and the field's path.
    With --var: each manifest named (in each of its variants) with those values."""
    roots = discovery.search_roots()
    values = given(vars)
    if values and not references:
        raise EnvctlError("--var sets the vars of the manifests named: give NAME (or NAME:VARIANT)", exit_code=EXIT_USAGE)
    if not references:
        references = [str(f.path) for f in discovery.list_manifests(roots) if not f.shadowed_by]
    failed = 0
    for reference in references:
        try:
            loaded = _load_all_variants(reference, roots, values)
        except ManifestError as exc:
            failed += 1
            for problem in exc.problems:
                typer.echo(f"error: {problem}", err=True)
        except EnvctlError as exc:
            if exc.exit_code == EXIT_USAGE:
                raise  # the command line is wrong (a --var), not the manifest
            failed += 1
            print_error(exc)
        else:
            typer.echo(f"ok: {loaded}")
    if failed:
        raise typer.Exit(EXIT_MANIFEST_INVALID)


def _load_all_variants(reference: str, roots, values: dict | None = None) -> str:
    """Validate a manifest: the variant (or combination) named, or else every variant it
    defines. With --var and no variant named: the variants that declare every var given (a
    var only one variant declares is checked there); none of them: the usage error."""
    from envctl.manifest.loader import load
    from envctl.manifest.overrides import describe

    name, variant = discovery.split_variant(reference)
    variants = [variant] if variant else (variant_names(name, roots) or [None])
    problems = []
    loaded = None
    checked, refused = [], []
    for each in variants:
        try:
            loaded = load(name, roots=roots, variant=each, vars=values)
        except ManifestError as exc:
            problems += exc.problems
        except EnvctlError as exc:
            if exc.exit_code != EXIT_USAGE or not values or variant or len(variants) == 1:
                raise
            refused.append(exc)
            continue
        checked.append(each)
    if refused and not checked and not problems:
        raise refused[0]
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)))
    label = f" [{', '.join(checked)}]" if checked != [None] else ""
    with_vars = f" with {describe(values)}" if values else ""
    skipped = f"; not {', '.join(v for v in variants if v not in checked)}, which lack a var given" if refused else ""
    return f"{loaded.manifest.name}{label}{with_vars} ({loaded.file}){skipped}"


def variant_names(name: str, roots) -> list[str]:
    """The variants a manifest file defines, read without resolving it."""
    from envctl.manifest.yamlsrc import parse_file

    path = discovery.find_manifest(name, roots)
    document, _ = parse_file(path)  # read as the loader reads it (merge keys, alias and depth limits)
    if document is None:
        return []  # the loader reports it
    data = document.data
    variants = data.get("variants") if isinstance(data, dict) else None
    return sorted(variants) if isinstance(variants, dict) else []


@app.command()
def schema() -> None:
    """Print the JSON Schema of the manifest format (for editor completion)."""
    from envctl.manifest.model import Manifest

    document = Manifest.model_json_schema()
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://envctl.dev/manifest.schema.json", **document}
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


@app.command()
def plan(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT, NAME:A+B or a manifest path"),
    args: Optional[List[str]] = typer.Argument(None, help="with --nodes: the entrypoint's extra arguments, after -- "
                                               "(as exec takes them)"),
    vars: Optional[List[str]] = var_option(),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to use: 0,1 or 0-3 or 0,2-3 (overrides device.cards)"),
    card_count: Optional[int] = typer.Option(None, "--card-count", help=CARD_COUNT_HELP),
    share_cards: bool = typer.Option(False, "--share-cards", help=SHARE_HELP),
    skip_driver_check: bool = typer.Option(False, "--skip-driver-check", help="do not stop on a driver mismatch"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="also save the plan to this file, for `up --plan FILE`"),
    force: bool = typer.Option(False, "--force", help="plan as `up --force` does: recreate even while work runs in the container"),
    nodes: Optional[List[str]] = typer.Option(None, "--nodes", help="show what `exec ENTRYPOINT --nodes` would start on each "
                                              "of these hosts (NAME up on each), starting nothing"),
    entrypoint: Optional[str] = typer.Option(None, "--entrypoint", "-e", help="with --nodes: the entrypoint"),
    master_addr: Optional[str] = typer.Option(None, "--master-addr", help="with --nodes: the master's data-plane IPv4 address"),
    master_port: Optional[int] = typer.Option(None, "--master-port", min=1, max=65535, help="with --nodes: the master port"),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="with --nodes: key=value overriding a parameter"),
    rank_table: bool = typer.Option(False, "--rank-table", help="with --nodes on Ascend: ask hccn_tool on every node and "
                                    "check the HCCL rank table exec --rank-table would write; show RANK_TABLE_FILE"),
    env_files: Optional[List[Path]] = typer.Option(None, "--env-file", help=ENV_FILE_HELP),
) -> None:
    """Show exactly what `up` would do on this host (or the hosts named); exit 5 when something blocks it
    (among them: recreating a container in which work runs). With --nodes: each node's part of
    `exec ENTRYPOINT --nodes` (the preflight, rank, address, master, command, node variables)."""
    from envctl.manifest.loader import load
    from envctl.plan import Options
    from envctl.planning import engine_if_any, plan_on

    if nodes:
        if hosts or cards or card_count is not None or output or force or skip_driver_check:
            raise EnvctlError("plan --nodes shows a run on environments already up: drop --host, --cards, -o, "
                              "--force and --skip-driver-check", exit_code=EXIT_USAGE)
        from envctl.multinode.views import plan_nodes

        if vars:
            raise EnvctlError("plan --nodes shows a run on environments already up, with the vars they were brought "
                              "up with: drop --var", exit_code=EXIT_USAGE)
        loaded = load(name)
        reference = f"{loaded.manifest.name}:{loaded.manifest.variant}" if loaded.manifest.variant else loaded.manifest.name
        together = remote_options(nodes, ssh_config, inventory, accept_host_key)
        raise typer.Exit(plan_nodes(together, reference, entrypoint, master_addr, master_port, list(sets or []), as_json,
                                    list(args or []), rank_table))
    if entrypoint or master_addr or master_port or sets or rank_table or args:
        raise EnvctlError("--entrypoint, --master-addr, --master-port, --set, --rank-table and arguments after -- go "
                          "with --nodes", exit_code=EXIT_USAGE)
    options = Options(cards=card_request(cards, card_count), skip_driver_check=skip_driver_check, force=force,
                      share_cards=share_cards, env_files=tuple(map(str, env_files or ())))
    loaded = load(name, vars=given(vars))
    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    plans = {}

    def work(host, echo) -> str:
        from envctl.observe import engine_round_ahead

        engine_round_ahead(host, loaded)  # the plan's first engine round, behind the API version's
        plans[host.name] = plan_on(host, loaded, with_host_cards(options, host), *engine_if_any(host))
        blockers, needs = plans[host.name].blockers, plans[host.name].needs
        return (f"blocked: {'; '.join(blockers)}" if blockers else f"needs: {'; '.join(needs)}" if needs
                else "ready to go up" if plans[host.name].ready else "undecided: the engine could not be asked")

    code = each_host(remote, work, "plan " + loaded.manifest.name)
    print_plans(plans, as_json, keyed=remote.wanted)
    if output is not None and plans:
        _save(output, plans, loaded, options)
    # Not ready (a blocker, something to provide, or an engine that could not be asked): exit 5.
    raise typer.Exit(code or (EXIT_HOST_NOT_READY if any(not p.ready for p in plans.values()) else 0))


def _save(output: Path, plans: dict, loaded, options: Options) -> None:
    from envctl import saved_plans
    from envctl.manifest.overrides import recorded
    from envctl.render import plan_json

    # A plan made without the engine decides nothing about image, container and setup: `up
    # --plan` would refuse it every time, so it is not written at all.
    undecided = sorted(host for host, p in plans.items() if not p.world.engine)
    if undecided:
        raise EnvctlError(f"not saved to {output}: the Docker engine of {', '.join(undecided)} could not be asked, "
                          "so the plan's image, container and setup steps are unknown",
                          hint="start the engine (or fix DOCKER_HOST) and run `envctl plan ... -o FILE` again",
                          exit_code=EXIT_HOST_NOT_READY)
    doc = saved_plans.document({host: json.loads(plan_json(p)) for host, p in plans.items()}, str(loaded.file),
                               loaded.manifest.variant, options.cards, options.skip_driver_check, options.share_cards,
                               recorded(loaded.overrides))
    saved_plans.write(output, doc)
    typer.echo(f"plan saved to {output}: `envctl up --plan {output}` applies exactly this plan", err=True)

@app.command()
def version() -> None:
    """Print envctl's version."""
    typer.echo(__version__)
