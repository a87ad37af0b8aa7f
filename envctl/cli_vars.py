"""The `--var NAME=VALUE` option, one definition for every command that resolves a manifest
from the command line (show, validate, plan, up, export, doctor, fetch, lock, image, build):
each of them resolves it exactly as `up` would (envctl/manifest/overrides.py)."""

from __future__ import annotations

from typing import List, Optional

import typer

from envctl.manifest import overrides

VAR_HELP = "NAME=VALUE: set one of the manifest's vars (over its profiles and variants); repeatable"


def var_option():
    return typer.Option(None, "--var", metavar="NAME=VALUE", help=VAR_HELP)


def given(items: Optional[List[str]]) -> dict[str, str]:
    """The --var values as text, name → value; a malformed one is a usage error (exit 2)."""
    return overrides.parse(items)
