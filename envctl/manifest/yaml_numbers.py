"""Unquoted YAML 1.1 scalars that do not mean what they look like, where envctl uses them.

PyYAML reads YAML 1.1: `1.10` is the float 1.1, `0022` the octal 18, `22:22` the base-60
number 1342, `1_000` is 1000, `.5` is 0.5, `+1` is 1, `yes`/`on` are true, `2001-12-14t21:59:43.10-05:00`
a timestamp. Where envctl turns such a value back into text (environment values, vars, params,
build args, argument lists, the user, published ports) the text would silently change (`torch1.10` → `torch1.1`,
`UMASK=0022` → `UMASK=18`), so it is refused with the quoted form to write. Where a field is a
number (card counts and indices, the ports an entrypoint serves, sizes, ulimits), only the
forms whose value is a surprise are refused: octal with a leading zero (YAML 1.2 and most
readers take `0022` as 22) and base 60. Docker Compose documents the base-60 trap for ports
(https://docs.docker.com/reference/compose-file/services/#ports).

Input: the document's data after layering and `Positions.written` (the text of every unquoted
scalar YAML resolved to a number, boolean or null). Output: (path, message) pairs.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any, Iterator

import yaml

ANY = object()  # a path pattern part matching any mapping key
INDEX = object()  # ... or any list index

# Fields whose value becomes text (the value of an environment variable, an argument, ...).
TEXT_FIELDS = [
    ("vars", ANY),
    ("container", "env", ANY),
    ("setup", INDEX, "env", ANY),
    ("entrypoints", ANY, "env", ANY),
    ("entrypoints", ANY, "params", ANY),
    ("image", "build_args", ANY),
    ("setup", INDEX, "run", INDEX),
    ("entrypoints", ANY, "run", INDEX),
    ("container", "user"),
    ("container", "ports", INDEX),
]
# Fields that are numbers: 22 is 22, but 0022 and 22:22 are not what anyone means.
NUMBER_FIELDS = [
    ("device", "cards"),
    ("device", "cards", INDEX),
    ("entrypoints", ANY, "cards"),
    ("entrypoints", ANY, "cards", INDEX),
    ("entrypoints", ANY, "ports", INDEX),
    ("container", "shm_size"),
    ("container", "ulimits", ANY),
]

_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")
_BASE_60 = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")


def _matches(path: tuple, pattern: tuple) -> bool:
    if len(path) != len(pattern):
        return False
    for part, want in zip(path, pattern):
        if want is ANY:
            if not isinstance(part, str):
                return False
        elif want is INDEX:
            if not isinstance(part, int):
                return False
        elif part != want:
            return False
    return True


def _value_at(data: Any, path: tuple) -> tuple[bool, Any]:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False, None
    return True, data


def as_text(value: Any) -> str:
    """The text envctl writes for a YAML value (the environment, params, arguments)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def reading(written: str, value: Any) -> str:
    """How YAML 1.1 read `written`, in words: "the octal number 18", "the number 1.1"."""
    if isinstance(value, bool):
        return f"the boolean {as_text(value)}"
    if isinstance(value, datetime.datetime):
        return f"the timestamp {as_text(value)}"
    if isinstance(value, datetime.date):
        return f"the date {as_text(value)}"
    if isinstance(value, float) and math.isnan(value):
        return "not-a-number"
    if isinstance(value, float) and math.isinf(value):
        return "infinity" if value > 0 else "minus infinity"
    if _BASE_60.match(written):
        return f"the base-60 number {as_text(value)}"
    if _OCTAL.match(written):
        return f"the octal number {as_text(value)}"
    if re.match(r"^[-+]?0x", written):
        return f"the hexadecimal number {as_text(value)}"
    if re.match(r"^[-+]?0b", written):
        return f"the binary number {as_text(value)}"
    return f"the number {as_text(value)}"


def quoted(written: str) -> str:
    return '"' + written.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _still_written(written: str, value: Any) -> bool:
    """Whether `value` is still the one read from `written` (a later layer or a ${reference}
    may have replaced it at the same path)."""
    try:
        read = yaml.safe_load(written)
    except yaml.YAMLError:
        return False
    if type(read) is not type(value):
        return False
    if isinstance(read, float) and math.isnan(read):
        return math.isnan(value)
    return read == value


def problems(data: Any, written: dict[tuple, str]) -> Iterator[tuple[tuple, str]]:
    """(path, message) for each unquoted scalar whose YAML 1.1 reading changes what it says."""
    for path, text in sorted(written.items(), key=lambda item: [str(p) for p in item[0]]):
        found, value = _value_at(data, path)
        if not found or value is None or isinstance(value, str) or not _still_written(text, value):
            continue
        if any(_matches(path, pattern) for pattern in TEXT_FIELDS):
            if as_text(value) == text:
                continue
            if isinstance(value, bool):
                if path[-2:-1] == ("env",):
                    continue  # the model refuses every boolean in env, with its own advice
                yield path, (f"YAML reads {text} as {reading(text, value)}; write {quoted(text)} (quoted) "
                             f"for the text {text}, or {as_text(value)}")
            else:
                yield path, f"YAML 1.1 reads {text} as {reading(text, value)}; write {quoted(text)} (quoted) to keep the text {text}"
        elif any(_matches(path, pattern) for pattern in NUMBER_FIELDS):
            if isinstance(value, int) and not isinstance(value, bool) and (_OCTAL.match(text) or _BASE_60.match(text)):
                if _OCTAL.match(text):
                    decimal = int(text.replace("_", ""), 10)
                    yield path, f"YAML 1.1 reads {text} as {reading(text, value)}; write {decimal} (or {value}) without leading zeros"
                elif path[:2] == ("container", "ulimits"):
                    yield path, f"YAML 1.1 reads {text} as {reading(text, value)}; write {quoted(text)} (quoted) for soft:hard limits"
                else:
                    yield path, f"YAML 1.1 reads {text} as {reading(text, value)}; write the number meant, without colons"
