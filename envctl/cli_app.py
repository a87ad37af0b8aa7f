"""The pieces every command module shares: the Typer app and small helpers for arguments and
messages."""

from __future__ import annotations

import typer

from envctl.cards import CardsError, parse_indices
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
    """`--cards 0,2-3` → (0, 2, 3), read as the manifest and the inventory read card indices."""
    if text is None:
        return None
    try:
        return parse_indices(text)
    except CardsError as problem:
        raise EnvctlError(f"--cards {problem}", exit_code=EXIT_USAGE) from None


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



def plan_here(loaded, options, client=None, engine_problem: str | None = None):
    """The plan of a loaded manifest on this host; with a Docker client the engine is observed
    too (image, container, setup markers, baked images)."""
    from envctl.observe import observe
    from envctl.plan import build_plan

    return build_plan(loaded, observe(local_host(), loaded, client, engine_problem=engine_problem), options)


def engine_if_any():
    """(client, None) when this host's engine answers, else (None, why): `plan` and `up
    --dry-run` observe the same way, and still show a plan without an engine."""
    from envctl.engine import connect

    try:
        return connect(), None
    except EnvctlError as problem:
        return None, f"the engine could not be asked: {problem.message.splitlines()[0]}"
