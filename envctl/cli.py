"""The `envctl` command line: the only modules that print or exit are this one and the command
modules (envctl/cli_*.py). Each command's module is imported when that command runs or shows
its help, and no other (envctl.cli_app.COMMANDS): `envctl --help` starts in the time of Python
and typer, `envctl version` in that of Python."""

from __future__ import annotations

import os
import sys


def __getattr__(name: str):
    # `from envctl.cli import app` (the Typer app, for typer.testing.CliRunner), without importing
    # typer whenever envctl.cli is imported.
    if name == "app":
        from envctl.cli_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    if sys.argv[1:] == ["version"]:
        # The one command that needs nothing: printed before typer is imported (typer ≥ 0.2x parses
        # even an absent --help through pydantic). `envctl version --help` and every other form
        # go through the app below, whose `version` prints the same.
        from envctl import __version__

        print(__version__)
        return
    # Typer handles usage errors and --help itself (exit 2 / 0); everything else that escapes a
    # command is either a user-fixable EnvctlError or a bug.
    import typer

    from envctl.cli_app import app, print_error
    from envctl.errors import EXIT_INTERNAL, EnvctlError

    try:
        app()
    except EnvctlError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug in envctl, not a user mistake ...
        if os.environ.get("ENVCTL_DEBUG") == "1":
            raise
        import traceback

        from envctl.fs_errors import explain_os_error, is_path_error

        if is_path_error(exc):  # ... unless a directory or file envctl writes failed: name it
            error = explain_os_error(exc)
            print_error(error)
            sys.exit(error.exit_code)
        typer.echo("error: envctl hit an internal error (a bug). Run again with ENVCTL_DEBUG=1 for the traceback.", err=True)
        typer.echo("       " + traceback.format_exc().strip().splitlines()[-1], err=True)
        sys.exit(EXIT_INTERNAL)
