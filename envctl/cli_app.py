"""The pieces every command module shares: the Typer app and small helpers for arguments and
messages."""

from __future__ import annotations

import typer

from envctl.errors import EXIT_USAGE, EnvctlError, ManifestError
from envctl.hosts.local import LocalHost

app = typer.Typer(
    name="envctl",
    help="Reproducible LLM environments on Cambricon MLU and Huawei Ascend servers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def parse_cards(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        cards = tuple(int(part) for part in text.split(",") if part.strip() != "")
    except ValueError:
        raise EnvctlError(f"--cards {text!r}: write card indices separated by commas, e.g. --cards 0,1", exit_code=EXIT_USAGE) from None
    if not cards or any(c < 0 for c in cards) or len(set(cards)) != len(cards):
        raise EnvctlError(f"--cards {text!r}: write distinct card indices, e.g. --cards 0,1", exit_code=EXIT_USAGE)
    return cards


def local_host() -> LocalHost:
    return LocalHost.from_environ()


def say(text: str) -> None:
    """Progress and outcomes go to stderr; stdout carries only what a command was asked for."""
    typer.echo(text, err=True)


def print_error(error: EnvctlError) -> None:
    lines = error.message.splitlines() or [""]
    typer.echo(f"error: {lines[0]}", err=True)
    for line in lines[1:]:
        typer.echo(f"error: {line}" if isinstance(error, ManifestError) else f"       {line}", err=True)
    if error.hint:
        typer.echo(f"hint:  {error.hint}", err=True)



def plan_here(loaded, options, client=None):
    """The plan of a loaded manifest on this host; with a Docker client the engine is observed
    too (image present, baked images)."""
    from envctl.observe import observe
    from envctl.plan import build_plan

    return build_plan(loaded, observe(local_host(), loaded, client), options)
