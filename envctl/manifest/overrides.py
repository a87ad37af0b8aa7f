"""`--var NAME=VALUE` from the command line: read, checked against the manifest's `vars`, typed.

A command-line value overrides the `vars:` a manifest, its profiles and its variants set (the
last layer, as terraform's `-var` and Helm's `--set` are over their files). Three rules make
a typo fail loudly instead of leaving the manifest's value in place:

- only a name the resolved manifest declares under `vars` can be set; any other is a usage
  error naming the declared ones, with the closest as a did-you-mean (a name only referenced
  as `${NAME}` is read from the environment, and the error says so);
- a name given twice is an error (which of two values was meant cannot be guessed);
- the value takes the type the manifest gives the variable: `cards: 1` makes `--var cards=2`
  the number 2 and `--var cards=two` an error; `size: 7B` makes `--var size=14` the text
  "14"; a variable written as one reference (`${CARDS:-1}`) is a number when the value is an
  integer written plainly, as interpolate.expand_tree types such a value.

A secret-looking name (HF_TOKEN, api_key, ...) is refused: the values given are recorded with
the environment `up` creates (a container label, a saved plan), and a secret belongs in the
caller's environment, read with `${NAME}`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.manifest.did_you_mean import suggest
from envctl.manifest.interpolate import looks_secret

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")  # as interpolate's ${NAME}
_WHOLE_REFERENCE = re.compile(r"^\$\{[^}]*\}$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_FLOAT = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


def usage(message: str, hint: str | None = None) -> EnvctlError:
    return EnvctlError(message, hint=hint, exit_code=EXIT_USAGE)


def parse(items: Iterable[str] | None) -> dict[str, str]:
    """`["size=14B", "cards=2"]` → {"size": "14B", "cards": "2"}, in the order given. The value
    is everything after the first `=` and may be empty or hold `=`. Raises EnvctlError (exit 2)
    for an item without `=`, a name that cannot be a variable's, a secret-looking name, or a
    name given twice."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise usage(f"--var {item!r}: write NAME=VALUE")
        name = name.strip()
        if not _NAME.match(name):
            raise usage(f"--var {item!r}: '{name}' is not a variable name (letters, digits, '_' and '.', "
                        "not starting with a digit)")
        if looks_secret(name):
            raise usage(f"--var {name}: a secret is not given on the command line; values of --var are recorded "
                        "with the environment (container label, saved plan)",
                        hint=f"export {name.upper()} in your environment and read it in the manifest as "
                             f"${{{name.upper()}}}")
        if name in out:
            raise usage(f"--var {name} given twice ({out[name]!r} and {value!r}); give it once")
        out[name] = value
    return out


def check_names(given: Mapping[str, str], declared: Iterable[str], referenced: Iterable[str], manifest: str) -> None:
    """Refuse names the manifest does not declare under `vars` (after profiles and variants).
    `referenced`: names the manifest reads as ${NAME} without declaring them."""
    declared = list(declared)
    for name in given:
        if name in declared:
            continue
        if name in set(referenced):
            raise usage(f"--var {name}: {manifest} reads '{name}' from the environment, not from its vars",
                        hint=f"set it for the command: {name}={given[name]} envctl ...")
        hint = suggest(name, declared)
        known = ", ".join(sorted(declared)) if declared else "none: it declares no vars"
        raise usage(f"--var {name}: {manifest} has no var '{name}'{hint}; its vars: {known}")


def typed(name: str, text: str, written: Any) -> Any:
    """The value of `--var name=text` in the type the manifest's own value has (`written`: that
    value as read from YAML, before interpolation). Raises EnvctlError (exit 2) when the text
    cannot have that type."""
    if isinstance(written, bool):
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise usage(f"--var {name}={text}: '{name}' is true or false in the manifest ({str(written).lower()}); "
                    "give true or false")
    if isinstance(written, int):
        if _INTEGER.match(text.strip()):
            return int(text)
        raise usage(f"--var {name}={text}: '{name}' is a whole number in the manifest ({written}); "
                    f"'{text}' is not one")
    if isinstance(written, float):
        if _FLOAT.match(text.strip()):
            return float(text)
        raise usage(f"--var {name}={text}: '{name}' is a number in the manifest ({written}); '{text}' is not one")
    if isinstance(written, str) and _WHOLE_REFERENCE.match(written) and _INTEGER.match(text) and str(int(text)) == text:
        return int(text)  # typed as the manifest's own ${...} value would be (interpolate.expand_tree)
    return text


def recorded(overrides: Mapping[str, Any]) -> dict[str, str]:
    """The overrides as text, as they are recorded with an environment (labels hold text) and
    given back to `load` to resolve the manifest as it was brought up."""
    return {name: ("true" if value is True else "false" if value is False else str(value))
            for name, value in overrides.items()}


def describe(overrides: Mapping[str, Any]) -> str:
    """`--var size=14B --var cards=2`, for messages and plans: one line, each value as `shown`."""
    return " ".join(f"--var {name}={shown(value)}" for name, value in recorded(overrides).items())


def shown(value: str) -> str:
    """A --var value as one line of text: as given, or, when it holds a line break or another
    control character, in double quotes with JSON's escapes (`"a\\nb"`). Plans, messages and
    `show`'s YAML comments print it; a raw line break would end a comment and break the YAML."""
    import json

    return json.dumps(value, ensure_ascii=False) if any(ord(c) < 32 or ord(c) == 127 for c in value) else value


def with_outside_values(problems: list, used: Mapping[tuple, list], given: Mapping[str, Any]) -> list:
    """`problems` (errors.Problem) with, for each one at a value whose `${...}` took a --var or
    an environment variable (directly, or through a var that did: `model: Qwen-${size}`), what
    gave it: ` (${tag} ← --var tag=v2:x)`, ` (${TAG} ← environment TAG)`. The problem is reported
    at the line that holds the reference, where the file shows `${tag}`, not the value that is
    wrong; this names the value's source. An environment value is named, never shown (it may
    be a secret); a --var value is shown (secret-looking names are refused as --var)."""
    from dataclasses import replace

    from envctl.manifest.yamlsrc import dotted

    def outside(path: tuple, depth: int = 0) -> list[str]:
        said = []
        for ref in used.get(path, ()):
            if ref.via == "vars" and ref.name in given:
                said.append(f"{ref.written} ← {describe({ref.name: given[ref.name]})}")
            elif ref.via == "environment":
                said.append(f"{ref.written} ← environment {ref.name}")
            elif ref.via == "vars" and depth < 8:
                said += [f"{ref.written} ← {inner}" for inner in outside(("vars", ref.name), depth + 1)]
        return said

    by_path = {dotted(path): path for path in used}
    out = []
    for problem in problems:
        path = by_path.get(problem.path)
        said = list(dict.fromkeys(outside(path))) if path is not None else []  # ${A}...${A}: said once
        out.append(replace(problem, message=f"{problem.message} ({'; '.join(said)})") if said else problem)
    return out
