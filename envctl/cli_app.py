"""The pieces every command module shares: the Typer app (its group imports a command's module
only when that command is looked up) and small helpers for arguments and messages."""

from __future__ import annotations

from difflib import get_close_matches
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

# The table of commands lives in envctl.cli, which answers `envctl version`, `envctl --help` and
# bash's completion of a command name before typer is imported.
from envctl.cli import APP_HELP, COMMANDS
from envctl.errors import EXIT_USAGE, EnvctlError, ManifestError

if TYPE_CHECKING:
    from envctl.hosts.local import LocalHost


# click's UsageError, wherever this typer keeps click (recent typers ship their own copy of it):
# BadParameter derives from it in every version.
_UsageError = typer.BadParameter.__bases__[0]


class LazyGroup(TyperGroup):
    """The `envctl` group: lists COMMANDS without importing their modules, and imports a
    command's module when the command is looked up (to run it, show its --help or complete it)."""

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            # Its decorators register it on `app`. __import__, not importlib.import_module: only the
            # import statement's path is timed by `python -X importtime`, which bench/ reads.
            __import__(COMMANDS[cmd_name].module)
            from typer.main import get_group

            for name, command in get_group(app).commands.items():
                self.commands.setdefault(name, command)
        return super().get_command(ctx, cmd_name)

    def get_params(self, ctx):
        # Typer passes every parameter value that is not a bool through a pydantic TypeAdapter, the
        # group's absent flags (--help, --show-completion: None) too; a False default keeps
        # `envctl COMMAND --help` and completion from importing pydantic (~25 ms) for nothing.
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.default is None:
                param.default = False
        return params

    def list_commands(self, ctx) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def _summary(self, ctx, name: str) -> str:
        if name in COMMANDS:
            return COMMANDS[name].summary
        command = self.get_command(ctx, name)
        return command.get_short_help_str(limit=1000) if command else ""

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, self._summary(ctx, name)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except _UsageError as problem:  # "did you mean" among every command, not only those imported
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args and self.suggest_commands else []
            if matches and "Did you mean" not in problem.message:
                problem.message = f"{problem.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise

    def shell_complete(self, ctx, incomplete: str):
        # Command names and summaries from the table: completing `envctl <TAB>` imports no command module.
        from typer._completion_classes import CompletionItem

        names = [name for name in self.list_commands(ctx) if name.startswith(incomplete)]
        return [CompletionItem(name, help=_short(self._summary(ctx, name))) for name in names] + \
            super(TyperGroup, self).shell_complete(ctx, incomplete)


def _short(summary: str, limit: int = 45) -> str:
    """A summary cut to one line of a shell's completion menu, at a word, as click cuts help."""
    if len(summary) <= limit:
        return summary
    return summary[:limit - 3].rsplit(" ", 1)[0].rstrip(",;:(") + "..."


app = typer.Typer(
    name="envctl",
    help=APP_HELP,
    cls=LazyGroup,
    # Shell completion (--install-completion, --show-completion, any shell typer knows): a command
    # name is completed from COMMANDS (bash's, in envctl.cli before typer is imported), a command's
    # options and arguments from its module alone.
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: rich (and the markdown-it and pygments it loads) would double the start-up of
    # `envctl --help` and `envctl COMMAND --help` for boxes around the same text.
    rich_markup_mode=None,
)


@app.callback()
def _group() -> None:
    # With a callback typer always builds a group, however few command modules are imported yet.
    pass


def parse_cards(text: str | None) -> tuple[int, ...] | None:
    """`--cards 0,2-3` → (0, 2, 3), read as the manifest and the inventory read card indices."""
    if text is None:
        return None
    from envctl.cards import CardsError, parse_indices

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
    from envctl.hosts.local import LocalHost

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
