"""`${NAME}` and `${NAME:-default}` in manifest strings.

Compose-style: every string value is expanded; `$${` writes a literal `${`; a bare `$NAME`
(no braces) is left alone so that shell commands in `run:` keep their container-side variables.
Names resolve from the manifest's `vars` (where `--var` overrides them), then the environment. An unset name without a
default is an error, never an empty string: an empty path or URL would fail much later and
far less clearly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|ACCESS_?KEY|CREDENTIAL|PRIVATE_?KEY)", re.I)


def looks_secret(name: str) -> bool:
    """Whether a variable name says it holds a credential (HF_TOKEN, FTP_PASSWORD, ...)."""
    return bool(_SECRET_NAME.search(name))


@dataclass(frozen=True)
class Reference:
    """One `${...}` that was expanded, and what gave its value (for `show --origin`)."""

    name: str
    via: str  # "vars" | "environment" | "default" (the text after :- )
    written: str  # as written: ${NAME} or ${NAME:-default}


@dataclass
class Expander:
    """Expands references; remembers the values of secret-looking variables it substituted and,
    per path expanded, which references gave the value (`used`)."""

    vars: Mapping[str, Any]
    environ: Mapping[str, str]
    secrets: set[str] = field(default_factory=set)
    used: dict[tuple, list[Reference]] = field(default_factory=dict)

    def expand(self, text: str, report: Callable[[str], None], path: tuple | None = None) -> str:
        found: list[Reference] = []
        def replace(match: re.Match) -> str:
            if match.group(0) == "$${":
                return "${"
            body = match.group(1)
            name, sep, default = body.partition(":-")
            if not _NAME.match(name):
                report(f"'${{{body}}}' is not a variable reference (write ${{NAME}} or ${{NAME:-default}}; $${{ for a literal)")
                return match.group(0)
            if name in self.vars:
                value = str(_text(self.vars[name]))
                found.append(Reference(name, "vars", match.group(0)))
            elif name in self.environ:
                value = self.environ[name]
                found.append(Reference(name, "environment", match.group(0)))
            elif sep:
                value = default
                found.append(Reference(name, "default", match.group(0)))
            else:
                report(f"variable '{name}' is not set: define it under vars, export it, or write ${{{name}:-default}}")
                return match.group(0)
            if looks_secret(name) and value:
                self.secrets.add(value)
            return value

        expanded = _REFERENCE.sub(replace, text)
        if path is not None and found:
            self.used[path] = found
        return expanded


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


KEY_NOT_EXPANDED = "keys are names and are not expanded"
_WHOLE_REFERENCE = re.compile(r"^\$\{[^}]*\}$")
_INTEGER = re.compile(r"^-?[0-9]+$")


def expand_tree(data: Any, expander: Expander, report: Callable[[tuple, str], None], path: tuple = ()) -> Any:
    """Expand every string in `data`. A value that is exactly one reference and expands to an
    integer written plainly becomes an integer, so `cards: ${CARDS:-2}` is a count, not the
    text "2"; `0022` or `+1` stay text (as an integer they would be written back as 22 or 1)."""
    if isinstance(data, dict):
        for key in data:
            if isinstance(key, str) and any(m.group(0) != "$${" for m in _REFERENCE.finditer(key)):
                # Keys are names (env names, params, build args), never expanded: `${v}: 1` would
                # otherwise become a variable literally named ${v} in the container.
                report(path + (key,), f"'{key}' is a key: {KEY_NOT_EXPANDED}; write the name itself (only values "
                                      f"take ${{...}})")
        return {k: expand_tree(v, expander, report, path + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_tree(v, expander, report, path + (i,)) for i, v in enumerate(data)]
    if isinstance(data, str) and "${" in data:
        expanded = expander.expand(data, lambda message: report(path, message), path)
        if _WHOLE_REFERENCE.match(data) and _INTEGER.match(expanded) and str(int(expanded)) == expanded:
            return int(expanded)
        return expanded
    return data
