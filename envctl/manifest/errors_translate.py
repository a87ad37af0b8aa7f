"""Pydantic validation errors → located problems in the user's words.

Pydantic knows the dotted path of a bad value but not the file position, and its messages
speak of "Input should be a valid integer". This module finds the position (value, key or the
enclosing mapping, depending on the error), names the path the way the README does
(`setup[0].run`) and words the message, with a did-you-mean for misspelled keys and values.
"""

from __future__ import annotations

import datetime
import re
import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from envctl.errors import Problem
from envctl.manifest import yaml_numbers
from envctl.manifest.did_you_mean import suggest  # noqa: F401 — also imported from here by others
from envctl.manifest.yamlsrc import Document, dotted

_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean (true or false)",
    "dict_type": "a mapping (key: value)",
    "list_type": "a list",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an Optional/Union annotation (one element for a plain one)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return [annotation]


def annotation_at(model: type[BaseModel], loc: tuple) -> Any:
    """The type annotation of the field at `loc` below `model`, or None when it cannot be told."""
    current: Any = model
    for part in loc:
        found = None
        for option in _unwrap(current):
            origin = typing.get_origin(option)
            if isinstance(option, type) and issubclass(option, BaseModel):
                field = option.model_fields.get(part) if isinstance(part, str) else None
                if field is not None:
                    found = field.annotation
            elif origin is dict and isinstance(part, str):
                found = typing.get_args(option)[1]
            elif origin is list and isinstance(part, int):
                found = typing.get_args(option)[0]
            if found is not None:
                break
        if found is None:
            return None
        current = found
    return current


def _fields_of(annotation: Any) -> list[str]:
    for option in _unwrap(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return list(option.model_fields)
    return []


def _literals_of(annotation: Any) -> list[str]:
    for option in _unwrap(annotation):
        if typing.get_origin(option) is Literal:
            return [str(a) for a in typing.get_args(option)]
    return []


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ('{value}')"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing (null)"
    return type(value).__name__


# How pydantic names the member of a union that an error came from, as one more part of `loc`
# (pydantic-core's union validator: the member's type as `int`, `str`, `list[int]`,
# `function-after[...]`, a model's class name, ...).
_MEMBER_TAG = re.compile(r"^(?:int|str|float|bool|none|bytes|list|dict|tuple|set|"
                         r"function-(?:before|after|wrap|plain)|lax-or-strict|json-or-python|constrained-\w+)(?:\[.*\])?$")


def _member_tag(part: Any, options: list[Any]) -> bool:
    """Whether `part` of a loc names a union member rather than a key, index or field."""
    if len(options) < 2 or not isinstance(part, str) or part == "[key]":
        return False
    if any(isinstance(o, type) and issubclass(o, BaseModel) and part == o.__name__ for o in options):
        return True
    takes_key = any(typing.get_origin(o) is dict or (isinstance(o, type) and issubclass(o, BaseModel)
                                                     and part in o.model_fields) for o in options)
    return not takes_key or bool(_MEMBER_TAG.match(part))


def value_loc(model: type[BaseModel], loc: tuple) -> tuple:
    """`loc` without the union-member parts pydantic adds (`container.ulimits.memlock.int`
    is `container.ulimits.memlock`): the path of the value as the user wrote it."""
    current: Any = model
    out: list = []
    for part in loc:
        options = _unwrap(current) if current is not None else []
        if _member_tag(part, options):
            chosen = [o for o in options if isinstance(o, type) and getattr(o, "__name__", None) == part]
            current = chosen[0] if chosen else None
            continue
        out.append(part)
        current = annotation_at(current, (part,)) if current is not None and part != "[key]" else None
    return tuple(out)


def translate_all(errors: list[ErrorDetails], model: type[BaseModel], doc: Document, data: Any) -> list[Problem]:
    """Every pydantic error as one problem per value: a value that fits none of a union's
    members (`ulimits: {memlock: null}` against `int | str`) gave one error per member, each
    with a path no user wrote (`memlock.int`, `memlock.str`); they become one problem naming
    every alternative. A check of envctl's own (in words already) wins over type errors at
    the same value."""
    grouped: dict[tuple, list[ErrorDetails]] = {}
    for error in errors:
        loc = value_loc(model, tuple(error["loc"]))
        grouped.setdefault(loc, []).append({**error, "loc": loc})
    problems = []
    for loc, group in grouped.items():
        if len(group) == 1:
            problems.append(translate(group[0], model, doc, data))
            continue
        own = [e for e in group if e["type"] not in _TYPE_WORDS]
        if own:
            problems += [translate(e, model, doc, data) for e in own]
            continue
        wanted = list(dict.fromkeys(_TYPE_WORDS[e["type"]] for e in group))
        merged = {**group[0], "type": "envctl", "ctx": None,
                  "msg": f"expected {' or '.join(wanted)}, got {_got(group[0].get('input'))}"}
        problems.append(translate(merged, model, doc, data))
    return list(dict.fromkeys(problems))


def translate(error: ErrorDetails, model: type[BaseModel], doc: Document, data: Any) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    at_key = False
    if loc and loc[-1] == "[key]":  # a mapping key (artifact or entrypoint name) failed
        loc, at_key = loc[:-1], True
    if kind == "extra_forbidden":
        parent = annotation_at(model, loc[:-1]) if loc[:-1] else model
        allowed = _fields_of(parent) if loc[:-1] else list(model.model_fields)
        key = loc[-1]
        message = f"unknown key '{key}'" + (suggest(key, allowed) or f"; expected one of: {', '.join(allowed)}")
        at_key = True
    elif kind == "missing":
        message = f"required key '{loc[-1]}' is missing"
        # Point at the mapping that lacks the key: the key line of its parent.
        return _problem(doc, loc[:-1], f"{dotted(loc)}", message, at_key=True)
    elif kind == "literal_error":
        choices = _literals_of(annotation_at(model, loc))
        message = f"'{value}' is not one of {', '.join(choices)}{suggest(value, choices)}"
    elif kind == "string_pattern_mismatch" and at_key:
        message = f"'{value}' is not a valid name (letters, digits, '.', '_', '-'; starting with a letter or digit)"
    elif kind == "string_pattern_mismatch":
        message = f"'{value}' is not a valid name (letters, digits, '.', '_', '-'; starting with a letter or digit)"
    elif kind in _TYPE_WORDS:
        message = f"expected {_TYPE_WORDS[kind]}, got {_got(value)}"
        written = doc.positions.written.get(loc)
        if kind == "string_type" and written is not None and (isinstance(value, datetime.date) or (
                isinstance(value, (bool, int, float)) and yaml_numbers.as_text(value) != written)):
            # `driver: 5.10` is the float 5.1 to YAML; say what to write, not just what was read.
            message = f"expected text, got {yaml_numbers.reading(written, value)} (YAML's reading of {written}); write {yaml_numbers.quoted(written)}"
    elif kind == "envctl":
        message = error["msg"]
        context = error.get("ctx") or {}
        if context.get("entry") is not None:  # a check of a whole mapping names the entry at fault
            loc, at_key = loc + (context["entry"],), bool(context.get("at_key"))
    elif kind.startswith("value_error"):
        message = error["msg"].removeprefix("Value error, ")
    else:
        message = error["msg"]
    return _problem(doc, loc, dotted(loc), message, at_key=at_key)


def _problem(doc: Document, loc: tuple, path: str, message: str, at_key: bool) -> Problem:
    pos = doc.positions.of_key(loc) if at_key else doc.positions.of_value(loc)
    if pos is None:
        return Problem(doc.file, 1, 1, path, message)
    return Problem(pos.file, pos.line, pos.column, path, message)
