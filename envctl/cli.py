"""The `envctl` command line: the only modules that print or exit are this one and the command
modules it loads (cli_manifests, cli_lifecycle, cli_images, cli_artifacts, cli_export, cli_cards, cli_serve)."""

from __future__ import annotations

import os
import sys
import traceback

import typer

from envctl import cli_artifacts, cli_cards, cli_export, cli_images, cli_lifecycle, cli_manifests, cli_serve  # noqa: F401  (they register their commands)
from envctl import cli_new  # noqa: F401  (envctl new: a manifest from another or from a docker run command)
from envctl import cli_config  # noqa: F401  (envctl config: the user configuration file)
from envctl.cli_app import app, print_error
from envctl.errors import EXIT_INTERNAL, EnvctlError
from envctl.fs_errors import explain_os_error, is_path_error


def main() -> None:
    # Typer handles usage errors and --help itself (exit 2 / 0); everything else that escapes a
    # command is either a user-fixable EnvctlError or a bug.
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
        if is_path_error(exc):  # ... unless a directory or file envctl writes failed: name it
            error = explain_os_error(exc)
            print_error(error)
            sys.exit(error.exit_code)
        typer.echo("error: envctl hit an internal error (a bug). Run again with ENVCTL_DEBUG=1 for the traceback.", err=True)
        typer.echo("       " + traceback.format_exc().strip().splitlines()[-1], err=True)
        sys.exit(EXIT_INTERNAL)
