"""The `envctl` command line: the only module that prints or exits."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import List, Optional

import typer
import yaml

from envctl import __version__
from envctl.errors import EXIT_HOST_NOT_READY, EXIT_INTERNAL, EXIT_MANIFEST_INVALID, EXIT_NOT_FOUND, EXIT_USAGE, EnvctlError, ManifestError
from envctl.hosts.local import LocalHost
from envctl.manifest import discovery
from envctl.manifest.loader import load
from envctl.manifest.model import Manifest
from envctl.observe import observe
from envctl.plan import Options, build_plan
from envctl.render import plan_json, plan_text, redact_tree

# The engine-facing modules (docker-py, requests) are imported inside the commands that use
# them: `validate`, `plan` and `list` should start in a fraction of the time.

app = typer.Typer(
    name="envctl",
    help="Reproducible LLM environments on Cambricon MLU and Huawei Ascend servers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _parse_cards(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        cards = tuple(int(part) for part in text.split(",") if part.strip() != "")
    except ValueError:
        raise EnvctlError(f"--cards {text!r}: write card indices separated by commas, e.g. --cards 0,1", exit_code=EXIT_USAGE) from None
    if not cards or any(c < 0 for c in cards) or len(set(cards)) != len(cards):
        raise EnvctlError(f"--cards {text!r}: write distinct card indices, e.g. --cards 0,1", exit_code=EXIT_USAGE)
    return cards


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
            first = (_variant_names(str(found.path), roots) or [None])[0]
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
    try:
        return load(path, roots=roots)
    except ManifestError:
        if first_variant is None:
            raise
        return load(path, roots=roots, variant=first_variant)


@app.command()
def show(name: str = typer.Argument(..., help="NAME, NAME:VARIANT or a manifest path")) -> None:
    """Print the fully resolved manifest: profiles merged, variant applied, variables expanded."""
    loaded = load(name)
    data = loaded.manifest.model_dump(mode="json", exclude_none=True)
    data.pop("variants", None)
    data = redact_tree(data, loaded.secrets)
    typer.echo(f"# resolved from {loaded.file}")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), nl=False)


@app.command()
def validate(references: Optional[List[str]] = typer.Argument(None, help="NAMEs or paths; default: every manifest found")) -> None:
    """Check manifests; every problem at once, with file:line:column and the field's path."""
    roots = discovery.search_roots()
    if not references:
        references = [str(f.path) for f in discovery.list_manifests(roots) if not f.shadowed_by]
    failed = 0
    for reference in references:
        try:
            loaded = _load_all_variants(reference, roots)
        except ManifestError as exc:
            failed += 1
            for problem in exc.problems:
                typer.echo(f"error: {problem}", err=True)
        except EnvctlError as exc:
            failed += 1
            _print_error(exc)
        else:
            typer.echo(f"ok: {loaded}")
    if failed:
        raise typer.Exit(EXIT_MANIFEST_INVALID)


def _load_all_variants(reference: str, roots) -> str:
    """Validate a manifest: the variant named, or else every variant it defines."""
    name, variant = discovery.split_variant(reference)
    variants = [variant] if variant else (_variant_names(name, roots) or [None])
    problems = []
    loaded = None
    for each in variants:
        try:
            loaded = load(name, roots=roots, variant=each)
        except ManifestError as exc:
            problems += exc.problems
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)))
    label = f" [{', '.join(variants)}]" if variants != [None] else ""
    return f"{loaded.manifest.name}{label} ({loaded.file})"


def _variant_names(name: str, roots) -> list[str]:
    """The variants a manifest file defines, read without resolving it."""
    path = discovery.find_manifest(name, roots)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return []  # the loader reports it
    variants = data.get("variants") if isinstance(data, dict) else None
    return sorted(variants) if isinstance(variants, dict) else []


@app.command()
def schema() -> None:
    """Print the JSON Schema of the manifest format (for editor completion)."""
    document = Manifest.model_json_schema()
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://envctl.dev/manifest.schema.json", **document}
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


@app.command()
def plan(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT or a manifest path"),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to use, e.g. 0,1 (overrides device.cards)"),
    skip_driver_check: bool = typer.Option(False, "--skip-driver-check", help="do not stop on a driver mismatch"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show exactly what `up` would do on this host; exit 5 when something blocks it."""
    options = Options(cards=_parse_cards(cards), skip_driver_check=skip_driver_check)
    loaded = load(name)
    host = LocalHost.from_environ()
    the_plan = build_plan(loaded, observe(host, loaded), options)
    typer.echo(plan_json(the_plan) if as_json else plan_text(the_plan), nl=not as_json)
    if the_plan.blockers:
        raise typer.Exit(EXIT_HOST_NOT_READY)


def _host() -> LocalHost:
    return LocalHost.from_environ()


def _say(text: str) -> None:
    typer.echo(text, err=True)


@app.command()
def up(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT or a manifest path"),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to use, e.g. 0,1 (overrides device.cards)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and change nothing"),
    skip_driver_check: bool = typer.Option(False, "--skip-driver-check", help="do not stop on a driver mismatch"),
) -> None:
    """Bring an environment up: driver check, devices, image, container, setup."""
    from envctl import apply
    from envctl.engine import connect
    from envctl.progress import ByteProgress

    options = Options(cards=_parse_cards(cards), skip_driver_check=skip_driver_check)
    loaded = load(name)
    host = _host()
    if dry_run:
        try:
            client = connect()
        except EnvctlError:
            client = None  # a dry run still shows the plan, without the engine's view
        the_plan = build_plan(loaded, observe(host, loaded, client), options)
        typer.echo(plan_text(the_plan), nl=False)
        raise typer.Exit(EXIT_HOST_NOT_READY if the_plan.blockers else 0)
    client = connect()
    the_plan = build_plan(loaded, observe(host, loaded, client), options)
    with ByteProgress() as progress:
        report = apply.up(client, loaded, the_plan, _say, progress)
    entries = ", ".join(e.name for e in the_plan.entrypoints) or "none"
    _say(f"ready      {the_plan.container.name}: envctl exec ENTRYPOINT --env {the_plan.container.name} (entrypoints: {entries})")
    del report


def _plan_for(env):
    """The plan of a running environment, from the manifest it was created from."""
    if not env.manifest_file:
        raise EnvctlError(f"{env.name} carries no manifest file label; recreate it with `envctl up`")
    loaded = load(env.manifest_file, variant=env.variant)
    host = _host()
    the_plan = build_plan(loaded, observe(host, loaded), Options(cards=env.cards or None, skip_driver_check=True))
    if the_plan.container.config_hash() != env.config_hash:
        _say(f"warning: {env.manifest_file} changed since {env.name} was created; `envctl up {env.reference}` applies it")
    return the_plan


@app.command("exec")
def exec_command(
    entrypoint: str = typer.Argument(..., help="an entrypoint of the environment's manifest"),
    args: Optional[List[str]] = typer.Argument(None, help="extra arguments, after --"),
    env: Optional[str] = typer.Option(None, "--env", help="the environment (needed when several are up)"),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="key=value overriding a parameter; repeatable"),
) -> None:
    """Run an entrypoint in its environment's container; exits with the entrypoint's code."""
    from envctl import environments, execute
    from envctl.engine import connect

    client = connect()
    chosen = environments.choose(client, env)
    the_plan = _plan_for(chosen)
    entries = {e.name: e for e in the_plan.entrypoints}
    if entrypoint not in entries:
        close = difflib.get_close_matches(entrypoint, list(entries), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise EnvctlError(f"{chosen.reference} has no entrypoint '{entrypoint}'{hint}; entrypoints: {', '.join(entries) or 'none'}",
                          exit_code=EXIT_USAGE)
    entry = entries[entrypoint]
    argv, variables = execute.apply_overrides(entry, list(sets or []), list(args or []))
    tty = entry.interactive and sys.stdin.isatty() and sys.stdout.isatty()
    workspace = chosen.workspace
    log_file = execute.log_path(Path(workspace), entrypoint) if workspace and not tty else None
    code = execute.run(execute.Invocation(chosen.name, argv, variables, entry.workdir, tty, log_file))
    if log_file is not None:
        _say(f"log: {log_file}")
    raise typer.Exit(code)


@app.command()
def shell(env: Optional[str] = typer.Option(None, "--env", help="the environment (needed when several are up)")) -> None:
    """Open a shell in an environment's container."""
    from envctl import environments, execute
    from envctl.engine import connect

    client = connect()
    chosen = environments.choose(client, env)
    the_plan = _plan_for(chosen)
    argv = ("sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi")
    invocation = execute.Invocation(chosen.name, argv, {}, the_plan.container.working_dir, sys.stdin.isatty(), None)
    raise typer.Exit(execute.run(invocation))


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """The environments envctl created on this host."""
    from envctl import environments
    from envctl.engine import connect

    client = connect()
    rows = [{"name": e.name, "manifest": e.reference, "status": e.status, "cards": list(e.cards),
             "image": (e.container.attrs.get("Config") or {}).get("Image"), "manifest_file": e.manifest_file,
             "workspace": e.workspace} for e in environments.all_environments(client)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no environments")
        return
    for r in rows:
        cards = ",".join(map(str, r["cards"])) or "-"
        typer.echo(f"{r['name']:<32} {r['status']:<8} cards {cards:<12} {r['manifest']}  ({r['image']})")


@app.command()
def logs(
    env: Optional[str] = typer.Argument(None, help="the environment (container name or manifest)"),
    entrypoint: Optional[str] = typer.Option(None, "--entrypoint", "-e", help="only this entrypoint's runs"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing what is appended"),
) -> None:
    """Print the log of the latest entrypoint run (kept in the environment's workspace)."""
    from envctl import environments, execute
    from envctl.engine import connect

    client = connect()
    chosen = environments.choose(client, env, running_only=False)
    if not chosen.workspace:
        raise EnvctlError(f"{chosen.name} has no workspace mount")
    pattern = f"{entrypoint}-*.log" if entrypoint else "*.log"
    found = sorted(Path(chosen.workspace, "logs").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise EnvctlError(f"no logs yet in {chosen.workspace}/logs" + (f" for {entrypoint}" if entrypoint else ""),
                          exit_code=EXIT_NOT_FOUND)
    execute.print_file(found[-1], follow)


@app.command()
def down(
    env: str = typer.Argument(..., help="the environment (container name or manifest)"),
    purge: bool = typer.Option(False, "--purge", help="also delete its workspace (logs, outputs, writable copies)"),
) -> None:
    """Remove an environment's container; the artifact cache and, unless --purge, the workspace stay."""
    from envctl import environments, lifecycle
    from envctl.engine import connect

    client = connect()
    chosen = environments.choose(client, env, running_only=False)
    workspace = chosen.workspace
    lifecycle.remove(client, chosen.name)
    _say(f"removed {chosen.name}")
    if purge and workspace and Path(workspace).exists():
        shutil.rmtree(workspace)
        _say(f"deleted workspace {workspace}")
    elif workspace:
        _say(f"kept workspace {workspace} (--purge deletes it)")


@app.command()
def doctor(
    name: Optional[str] = typer.Argument(None, help="a manifest to check the host against"),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to check"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Is this host ready? Exit 5 when a check fails."""
    from envctl.doctor import diagnose

    loaded = load(name) if name else None
    checks = diagnose(_host(), loaded, Options(cards=_parse_cards(cards)))
    if as_json:
        typer.echo(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            typer.echo(f"{c.status.upper():<5} {c.name:<{width}}  {c.detail}")
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(EXIT_HOST_NOT_READY)


@app.command()
def version() -> None:
    """Print envctl's version."""
    typer.echo(__version__)


def _print_error(error: EnvctlError) -> None:
    lines = error.message.splitlines() or [""]
    typer.echo(f"error: {lines[0]}", err=True)
    for line in lines[1:]:
        typer.echo(f"error: {line}" if isinstance(error, ManifestError) else f"       {line}", err=True)
    if error.hint:
        typer.echo(f"hint:  {error.hint}", err=True)


def main() -> None:
    # Typer handles usage errors and --help itself (exit 2 / 0); everything else that escapes a
    # command is either a user-fixable EnvctlError or a bug.
    try:
        app()
    except EnvctlError as exc:
        _print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:  # a bug in envctl, not a user mistake
        if os.environ.get("ENVCTL_DEBUG") == "1":
            raise
        typer.echo("error: envctl hit an internal error (a bug). Run again with ENVCTL_DEBUG=1 for the traceback.", err=True)
        typer.echo("       " + traceback.format_exc().strip().splitlines()[-1], err=True)
        sys.exit(EXIT_INTERNAL)
