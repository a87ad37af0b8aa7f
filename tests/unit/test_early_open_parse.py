"""early_open.parse reads the host options of `up`/`plan` exactly as typer does, or not at all
(envctl/remote/early_open.py): every command line it accepts is checked against the options
typer's own parser gives the command."""

from __future__ import annotations

import pytest
import typer

from envctl.cli import app
from envctl.remote.early_open import parse
from envctl.remote.hosts_open import RemoteOptions


def _typer_reads(args: list[str]) -> RemoteOptions:
    """The remote options typer's parser gives `envctl ARGS` (click's context of the command,
    nothing run)."""
    group = typer.main.get_command(app)
    command = group.get_command(None, args[0])
    context = command.make_context(args[0], list(args[1:]))
    p = context.params
    return RemoteOptions(tuple(p["hosts"] or ()), p["ssh_config"], p["inventory"], p["accept_host_key"])


ACCEPTED = [
    ["up", "chatglm3-mlu", "--host", "lab3"],
    ["up", "--host", "lab3", "chatglm3-mlu"],
    ["up", "chatglm3-mlu", "-H", "lab3"],
    ["up", "chatglm3-mlu", "--hosts=lab[1-4],gpu"],
    ["up", "chatglm3-mlu", "--host", "lab1", "--host", "lab2", "-H", "lab3"],
    ["up", "m.yaml", "--host", "lab1", "--ssh-config", "/etc/ssh/lab", "--inventory=/srv/inv.yaml"],
    ["up", "m", "--force", "--offline", "--var", "MODEL=7b", "--cards=0,1", "--host", "lab1", "--share-cards",
     "--skip-driver-check", "--card-count", "2", "--env-file", "secrets.env"],
    ["plan", "m", "--host", "lab1", "--var=A=1", "--skip-driver-check"],
    ["plan", "--hosts", "a,b", "m"],
]


@pytest.mark.parametrize("args", ACCEPTED, ids=lambda a: " ".join(a))
def test_what_parse_reads_is_what_typer_reads(args):
    assert parse(args) == _typer_reads(args)


@pytest.mark.parametrize("args", [
    ["up", "m"],  # no host: this machine
    ["exec", "train", "--host", "lab1"],  # not a command opened early
    ["status", "--host", "lab1"],
    ["up", "a", "b", "--host", "lab1"],  # two names: typer's usage error
    ["up", "m", "--host"],  # a value missing
    ["up", "m", "--host", "--force"],  # click would take "--force" as the host
    ["up", "m", "--host="],
    ["up", "m", "--dry-run", "--host", "lab1"],  # an option not listed: the command opens
    ["up", "m", "--json", "--host", "lab1"],
    ["up", "m", "--force=yes", "--host", "lab1"],  # a flag given a value: typer's error
    ["up", "m", "-Hlab1"],  # click's joined short form: left to typer
    ["up", "m", "-H=lab1"],
    ["up", "m", "--ssh-config", "a", "--ssh-config", "b", "--host", "lab1"],  # typer keeps the last: its call
    ["up", "m", "--", "--host", "lab1"],
    ["plan", "m", "--env-file", "x", "--host", "lab1"],  # not listed for plan: the command opens
    ["plan", "--host", "lab1"],  # no NAME: typer's usage error, the opening would be left behind
    ["up", "--host", "lab1"],  # no NAME (nor --plan, left to the command): up's usage error
    ["up", "m", "--card-count", "two", "--host", "lab1"],  # typer's usage error: not an integer
    ["up", "m", "--card-count=²", "--host", "lab1"],
    # Accepting records a key: the command's, once it gets there, never an opening it may not
    # take (an invalid manifest).
    ["up", "m", "--host", "lab1", "--accept-host-key", "SHA256:abc"],
    ["plan", "m", "--accept-host-key=SHA256:abc", "-H", "lab1"],  # a digit to str.isdigit, not to int()
    [],
])
def test_anything_else_is_left_to_the_command(args):
    assert parse(args) is None


@pytest.mark.parametrize("name", ["up", "plan"])
def test_the_options_parse_knows_are_the_commands_own_with_their_kind(name):
    """An option renamed or turned from a flag into one with a value is caught here, not by a
    command line read otherwise than typer reads it."""
    from envctl.remote.early_open import _HOST_OPTIONS, _OTHER_OPTIONS, _REMOTE_VALUES, COMMANDS

    assert name in COMMANDS
    command = typer.main.get_command(app).get_command(None, name)
    kinds = {opt: not param.is_flag for param in command.params if hasattr(param, "is_flag") for opt in param.opts}
    for option, takes_value in [*_OTHER_OPTIONS[name].items(), *((o, True) for o in (*_HOST_OPTIONS, *_REMOTE_VALUES))]:
        assert kinds.get(option) is takes_value, option


# Words of every kind parse tells apart: names, host options in each form, a remote option, an
# option with a value (a number), a flag, a value starting with "-", the end of options.
_WORDS = ["m", "lab1", "--host", "-H", "--hosts=a,b", "--inventory", "--card-count", "2", "--force", "-x", "--"]


@pytest.mark.parametrize("name", ["up", "plan"])
def test_every_short_line_parse_reads_is_one_typer_reads_alike_and_runs(name):
    """Every line of up to four of these words: when parse reads it, typer's parser reads the
    same options and refuses nothing, and it names what the command needs (NAME), so the
    command takes the opening; a line parse reads that typer refuses (a missing NAME, a count
    that is not a number) started an opening nothing takes."""
    import itertools

    group = typer.main.get_command(app)
    command = group.get_command(None, name)
    read = 0
    for length in range(5):
        for words in itertools.product(_WORDS, repeat=length):
            args = [name, *words]
            options = parse(args)
            if options is None:
                continue
            read += 1
            context = command.make_context(name, list(words))  # raises typer's usage error
            p = context.params
            assert options == RemoteOptions(tuple(p["hosts"] or ()), p["ssh_config"], p["inventory"],
                                            p["accept_host_key"]), args
            assert p["name"] is not None, args
    assert read > 100  # the lines parse reads are among them
