"""The --var values an environment was brought up with, as its container's io.envctl.vars
label keeps them (JSON {name: text}, written by envctl/containers.py). Read by `status` on both
of its paths (envctl/environments.py, envctl/quick_status.py), so this module imports nothing."""

from __future__ import annotations

import json


def parse_vars_label(text: str | None) -> dict | None:
    """{name: text} of the label; {} for an absent or empty label; None for a label envctl did
    not write (not JSON, or not an object of text values)."""
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError:
        return None
    if not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        return None
    return values
