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


def card_request(cards: str | None, count: int | None):
    """--cards (indices) or --card-count (a count of free cards), not both; None for neither."""
    if cards is not None and count is not None:
        raise EnvctlError("give --cards (card indices) or --card-count (how many free cards), not both", exit_code=EXIT_USAGE)
    if count is not None:
        if count < 0:
            raise EnvctlError(f"--card-count {count}: a card count cannot be negative", exit_code=EXIT_USAGE)
        return count
    return parse_cards(cards)


CARD_COUNT_HELP = "how many cards: free ones are chosen, lowest first (overrides device.cards)"
SHARE_HELP = "use cards named with --cards (or in the manifest) even when another container holds them"


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
    """The plan of a loaded manifest on this machine (envctl.planning.plan_on); with a Docker
    client the engine is observed too (image, container, setup markers, baked images)."""
    from envctl.planning import plan_on

    return plan_on(local_host(), loaded, options, client, engine_problem)


def engine_if_any():
    """(client, None) when this machine's engine answers, else (None, why)."""
    from envctl.planning import engine_if_any as of_host

    return of_host(local_host())


def print_plans(plans: dict, as_json: bool, keyed: bool) -> None:
    """The plans on stdout, as `plan` and `up --dry-run` both print them: one plan as it is, or
    (`keyed`: hosts were named) each under its host's name."""
    import json

    from envctl.render import plan_json, plan_text

    if not keyed:
        for the_plan in plans.values():
            typer.echo(plan_json(the_plan) if as_json else plan_text(the_plan), nl=not as_json)
    elif as_json:
        typer.echo(json.dumps({host: json.loads(plan_json(p)) for host, p in plans.items()}, indent=2))
    else:
        for host, the_plan in plans.items():
            typer.echo(f"# {host}\n{plan_text(the_plan)}", nl=False)
