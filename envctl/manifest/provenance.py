"""Which layer and which line set each value of a resolved manifest (`envctl show --origin`,
`show --json`).

A resolved manifest is layered: profiles (`extends`), the manifest, its variant(s), `--var`,
and inside strings `${...}` references whose value came from a var, the caller's environment
or the default written after `:-`. The loader keeps, for every path, the position of the layer
that wrote it (compose.LayerPosition names profiles and variants) and the references each
expanded string used (interpolate.Reference); this module turns them into one Origin per value
shown. A value no layer wrote is the format's default (model.py).

Environment values are named, never printed: `show` redacts secret values, and an origin only
says "environment HF_ENDPOINT".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from envctl.manifest.compose import LayerPosition
from envctl.manifest.overrides import recorded, shown
from envctl.manifest.yamlsrc import Positions, dotted


@dataclass
class Trace:
    """What the loader learnt while resolving: positions (with layers), the references each
    expanded path used, the --var values given (typed), the manifest file."""

    positions: Positions
    used: dict
    overrides: dict
    file: str
    by_default: bool = False  # the variant is the manifest's default_variant, not one named on the command line


@dataclass(frozen=True)
class Origin:
    """Where one value came from. `layer`: "manifest", "profile NAME", "variant NAME", "--var",
    "command line" (the variant named as NAME:VARIANT) or "default" (nothing wrote it: the
    format's default, model.py). `file`/`line`/`column`: where it is
    written (None for --var and defaults). `references`: for a value holding ${...}, each
    reference and what gave it its value, in the order written."""

    layer: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    references: tuple["Source", ...] = field(default_factory=tuple)

    def as_json(self) -> dict:
        out: dict[str, Any] = {"layer": self.layer}
        if self.file is not None:
            out.update(file=self.file, line=self.line, column=self.column)
        if self.references:
            out["references"] = [r.as_json() for r in self.references]
        return out


@dataclass(frozen=True)
class Source:
    """What gave one `${...}` its value: "--var", "vars" (the var's own origin in `origin`),
    "environment" or "default" (the text after :-)."""

    reference: str  # as written: ${size} or ${CARDS:-2}
    name: str
    via: str
    origin: Origin | None = None  # via vars: where that var was set

    def as_json(self) -> dict:
        out = {"reference": self.reference, "name": self.name, "from": self.via}
        if self.origin is not None:
            out["origin"] = self.origin.as_json()
        return out


def origins(data: Any, trace: Trace) -> dict[tuple, Origin]:
    """Path → Origin for every value in `data` (the resolved manifest as shown: a model dump,
    so values the format defaults are there too). A mapping or list is described by its items;
    an empty one by itself."""
    out: dict[tuple, Origin] = {}
    for path in _leaf_paths(data):
        out[path] = origin_of(path, trace)
    return out


def origin_of(path: tuple, trace: Trace, depth: int = 0) -> Origin:
    if len(path) == 2 and path[0] == "vars" and path[1] in trace.overrides:
        return Origin("--var")
    if path == ("variant",):  # set by compose.apply_variant: chosen on the command line or by default_variant
        return origin_of(("default_variant",), trace, depth) if trace.by_default else Origin("command line")
    located = _located(path, trace.positions)
    if located is None:
        return Origin("default")
    pos = trace.positions.values[located]
    layer = pos.layer if isinstance(pos, LayerPosition) else "manifest"
    references = tuple(_source(ref, trace, depth) for ref in trace.used.get(located, ()))
    return Origin(layer, pos.file, pos.line, pos.column, references)


def _source(ref, trace: Trace, depth: int) -> Source:
    if ref.via != "vars":
        return Source(ref.written, ref.name, ref.via)
    if ref.name in trace.overrides:
        return Source(ref.written, ref.name, "--var")
    # A var's own value may hold references (vars: {model: "Qwen-${size}"}); depth guards a
    # var that names itself, which the loader resolves from the environment.
    inner = origin_of(("vars", ref.name), trace, depth + 1) if depth < 8 else None
    return Source(ref.written, ref.name, "vars", inner)


def _located(path: tuple, positions: Positions) -> tuple | None:
    """The path whose written value this one is: itself, or an ancestor written as one value
    that the format turned into several (`cards: "0,1"` shown as a list); None when the nearest
    written ancestor is a mapping that lacks this key (a default)."""
    for end in range(len(path), 0, -1):
        candidate = tuple(path[:end])
        if candidate in positions.values:
            if end == len(path):
                return candidate
            below = tuple(path[:end + 1])
            mapping = any(key[:end] == candidate and len(key) == end + 1 for key in positions.keys)
            return None if mapping or below in positions.keys else candidate
    return None


def _leaf_paths(data: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(data, dict) and data:
        return [p for key, value in data.items() for p in _leaf_paths(value, path + (key,))]
    if isinstance(data, list) and data:
        return [p for index, value in enumerate(data) for p in _leaf_paths(value, path + (index,))]
    return [path] if path else []


def words(origin: Origin, base: str, overrides: dict) -> str:
    """One origin as a comment: `variant 14b manifest.yaml:30; ${size} ← --var size=14B`.
    `base`: the directory file names are shown relative to (the manifest's)."""
    given = recorded(overrides)
    text = "envctl's default" if origin.layer == "default" else origin.layer
    if origin.file is not None:
        text += f" {_relative(origin.file, base)}:{origin.line}"
    for ref in origin.references:
        if ref.via == "--var":
            said = f"--var {ref.name}={shown(given.get(ref.name, ''))}"
        elif ref.via == "vars":
            inner = ref.origin
            said = f"vars.{ref.name}" + (f" ({words(inner, base, overrides)})" if inner is not None else "")
        elif ref.via == "environment":
            said = f"environment {ref.name}"
        else:
            said = "its default"
        text += f"; {ref.reference} ← {said}"
    return text


def _relative(file: str, base: str) -> str:
    try:
        return os.path.relpath(file, base)
    except ValueError:  # another drive (Windows)
        return file


def annotate(text: str, data: Any, found: dict[tuple, Origin], base: str, overrides: dict) -> str:
    """`text` (the YAML `show` prints for `data`) with each value's origin as a comment at the
    end of the line where the value starts. The comments change nothing a YAML reader sees.
    The positions are read back from `text` itself, so any layout the dumper chooses works."""
    lines = text.split("\n")
    where = _value_lines(yaml.compose(text, Loader=yaml.SafeLoader), ())
    notes: dict[int, list[str]] = {}
    for path, origin in found.items():
        line = where.get(path)
        if line is not None:
            notes.setdefault(line, []).append(words(origin, base, overrides))
    width = min(max((len(lines[i]) for i in notes), default=0), 60)
    for index, said in notes.items():
        lines[index] = f"{lines[index]:<{width}}  # {' | '.join(dict.fromkeys(said))}"
    return "\n".join(lines)


def _value_lines(node: yaml.Node | None, path: tuple) -> dict[tuple, int]:
    """Path → 0-based line where its value starts, for the leaves of a composed document."""
    if node is None:
        return {}
    if isinstance(node, yaml.MappingNode) and node.value:
        out: dict[tuple, int] = {}
        for key, value in node.value:
            out.update(_value_lines(value, path + (key.value,)))
        return out
    if isinstance(node, yaml.SequenceNode) and node.value:
        out = {}
        for index, value in enumerate(node.value):
            out.update(_value_lines(value, path + (index,)))
        return out
    return {path: node.start_mark.line}


def as_json(found: dict[tuple, Origin]) -> dict[str, dict]:
    """Origins keyed by dotted path (`container.env.HF_ENDPOINT`, `setup[0].run`)."""
    return {dotted(path): origin.as_json() for path, origin in found.items()}

