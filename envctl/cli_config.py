"""`envctl config`: the user configuration file in effect, and where each mirror comes from."""

from __future__ import annotations

import json
import os
from typing import List, Optional

import typer

from envctl.cli_app import app
from envctl.cli_remote import host_option, inventory_option

config_app = typer.Typer(help="The user configuration file (mirrors): what is in effect and where each setting comes from.")
app.add_typer(config_app, name="config")

KINDS_SHOWN = {"huggingface": "Hugging Face endpoint (HF_ENDPOINT)", "modelscope": "ModelScope endpoint (MODELSCOPE_ENDPOINT)",
               "pip": "pip index for containers (PIP_INDEX_URL, at run time)"}


@config_app.callback(invoke_without_command=True)
def config(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    hosts: Optional[List[str]] = host_option(),
    inventory: Optional[str] = inventory_option(),
) -> None:
    """Without a subcommand: `envctl config show`, with the same options (`envctl config
    --json`, `envctl config --host lab1`), as the README writes them."""
    if ctx.invoked_subcommand is None:
        show(as_json=as_json, hosts=hosts, inventory=inventory)
    elif as_json or hosts or inventory:
        raise typer.BadParameter(f"give --json, --host and --inventory after `{ctx.invoked_subcommand}`")


@config_app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    hosts: Optional[List[str]] = host_option(),
    inventory: Optional[str] = inventory_option(),
) -> None:
    """The mirrors in effect for downloads by this machine (or, with --host, by those inventory
    hosts: their inventory mirrors and env over this machine's) and where each was set: the
    config file's line, an environment variable or the inventory. Exit 3 naming file:line for a
    bad configuration file."""
    from envctl import mirror_routes, user_config

    config_file = user_config.load(os.environ)
    views = {"this machine": mirror_routes.routes(config_file, os.environ)}
    fetch_modes = {}
    if hosts:
        from envctl.cli_remote import entries, remote_options

        for entry in entries(remote_options(hosts, None, inventory, None)):
            layer = mirror_routes.HostLayer(entry.name, entry.mirrors, entry.env)
            views[entry.name] = mirror_routes.routes(config_file, os.environ, layer)
            fetch_modes[entry.name] = entry.fetch
    searched = user_config.config_path(os.environ)
    if as_json:
        typer.echo(json.dumps({"file": str(config_file.path) if config_file.path else None,
                               "routes": {name: _json(r) for name, r in views.items()}}, indent=2))
        return
    where = str(config_file.path) if config_file.path else (
        f"none ({searched or '$XDG_CONFIG_HOME/envctl/config.yaml'} does not exist; ENVCTL_CONFIG names another)")
    typer.echo(f"config file: {where}")
    for name, routes in views.items():
        typer.echo(f"\n# {name}" + _host_note(fetch_modes.get(name)))
        for line in _lines(routes):
            typer.echo(line)


def _host_note(fetch: str | None) -> str:
    if fetch is None:
        return ""
    return (" (fetch: remote: it downloads hub files itself through these; git and other sources come from this machine)"
            if fetch == "remote" else " (fetch: push: this machine downloads for it; its pip and registry mirrors apply there)")


def _lines(routes) -> list[str]:
    from envctl.user_config import shown_url

    out = []
    for kind, what in KINDS_SHOWN.items():
        route = routes.endpoints.get(kind)
        out.append(f"{kind:<12} {shown_url(route.url)}  (from {route.origin})" if route
                   else f"{kind:<12} none: the public service  — {what}")
    for kind, arrow in (("git", "→"), ("registries", "→")):
        rules = getattr(routes, kind)
        if not rules:
            out.append(f"{kind:<12} none")
        for key, route in sorted(rules.items(), key=lambda item: (-len(item[0]), item[0])):  # longest prefix first
            out.append(f"{kind:<12} {key} {arrow} {shown_url(route.url)}  (from {route.origin})")
    return out


def _json(routes) -> dict:
    from envctl.user_config import shown_url

    def one(route):
        return {"url": shown_url(route.url), "from": route.origin}

    return {**{kind: (one(routes.endpoints[kind]) if kind in routes.endpoints else None) for kind in KINDS_SHOWN},
            "git": {k: one(v) for k, v in routes.git.items()},
            "registries": {k: one(v) for k, v in routes.registries.items()}}
