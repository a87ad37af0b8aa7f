"""Layering: profiles under a manifest (`extends`), variants on top (`NAME:VARIANT`, or a
combination `NAME:14b+merged`, applied left to right).

Mappings merge key by key; lists and scalars from the upper layer replace the lower one, and an
explicit null removes what a lower layer set (`ulimits: {memlock: null}`). Each
merged value keeps the position of the layer it came from, so an error in a value a profile
supplied points into the profile file; positions from profiles and variants carry their layer's
name too (LayerPosition), which `envctl show --origin` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envctl.errors import Problem
from envctl.manifest.discovery import find_profile, profile_names
from envctl.manifest.did_you_mean import suggest
from envctl.manifest.yamlsrc import Document, Position, Positions, dotted, parse_file

# A profile supplies defaults; these belong to the manifest (or the profile file) alone.
PROFILE_ONLY_KEYS = {"description", "extends"}
NOT_IN_PROFILES = {"name", "variants", "default_variant", "variant"}
NOT_IN_VARIANTS = {"name", "extends", "variants", "default_variant", "variant"}


@dataclass(frozen=True)
class LayerPosition(Position):
    """A position that also says which layer wrote the value there: "profile ascend910",
    "variant 14b" (the manifest's own values keep plain Positions). Read by provenance.py."""

    layer: str = "manifest"


def tagged(positions: Positions, layer: str) -> Positions:
    """`positions` with every position not yet tagged (a profile's own, not those of the
    profiles it extends) tagged with `layer`."""

    def tag(pos: Position) -> Position:
        return pos if isinstance(pos, LayerPosition) else LayerPosition(pos.file, pos.line, pos.column, layer)

    return Positions({k: tag(v) for k, v in positions.values.items()}, {k: tag(v) for k, v in positions.keys.items()},
                     dict(positions.written))


def merge(lower: Document, upper: Document) -> Document:
    positions = Positions()
    positions.update(lower.positions)
    positions.update(upper.positions)
    return Document(_merge_values(lower.data, upper.data), positions, upper.file)


def _merge_values(lower: Any, upper: Any) -> Any:
    if isinstance(lower, dict) and isinstance(upper, dict):
        out = dict(lower)
        for key, value in upper.items():
            if value is None and key in lower:
                del out[key]  # null in an upper layer: back to the default
            else:
                out[key] = _merge_values(lower[key], value) if key in lower else value
        return out
    return upper


def _locate(doc: Document, path: tuple, message: str, key: bool = True) -> Problem:
    pos = doc.positions.of_key(path) if key else doc.positions.of_value(path)
    if pos is None:
        return Problem(doc.file, None, None, dotted(path), message)
    return Problem(pos.file, pos.line, pos.column, dotted(path), message)


def _extends_list(doc: Document) -> tuple[list[str], list[Problem]]:
    value = doc.data.get("extends")
    if value is None:
        return [], []
    if isinstance(value, str):
        return [value], []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value), []
    return [], [_locate(doc, ("extends",), "expected a profile name or a list of profile names", key=False)]


def resolve_extends(doc: Document, profile_dirs: list[Path], chain: tuple[str, ...] = ()) -> tuple[Document, list[Problem]]:
    """Merge the profiles `doc` extends (recursively) underneath it."""
    names, problems = _extends_list(doc)
    base: Document | None = None
    for index, name in enumerate(names):
        where = ("extends", index) if isinstance(doc.data.get("extends"), list) else ("extends",)
        if name in chain:
            cycle = " → ".join(chain + (name,))
            problems.append(_locate(doc, where, f"profiles extend each other in a cycle: {cycle}", key=False))
            continue
        path = find_profile(name, profile_dirs)
        if path is None:
            hint = suggest(name, profile_names(profile_dirs))
            looked = ", ".join(str(d) for d in profile_dirs if d.is_dir()) or "no profile directory exists"
            problems.append(_locate(doc, where, f"profile '{name}' not found{hint}; looked in {looked}", key=False))
            continue
        profile, parse_problems = parse_file(path)
        problems += parse_problems
        if profile is None:
            continue
        if not isinstance(profile.data, dict):
            problems.append(Problem(str(path), 1, 1, "", "a profile must be a mapping of manifest keys"))
            continue
        for key in sorted(NOT_IN_PROFILES & profile.data.keys()):
            problems.append(_locate(profile, (key,), f"'{key}' cannot be set in a profile (profiles only supply defaults)"))
        profile, nested = resolve_extends(profile, profile_dirs, chain + (name,))
        problems += nested
        layer = Document(
            {k: v for k, v in profile.data.items() if k not in PROFILE_ONLY_KEYS | NOT_IN_PROFILES},
            tagged(profile.positions, f"profile {name}"),
            profile.file,
        )
        base = layer if base is None else merge(base, layer)
    if base is None:
        return doc, problems
    return merge(base, doc), problems


def variant_parts(selection: str) -> list[str]:
    """'14b+merged' → ['14b', 'merged']: the variants of a combination, in the order applied."""
    return selection.split(SEPARATOR)


def apply_variant(doc: Document, variant: str | None) -> tuple[Document, str | None, list[Problem]]:
    """Merge the selected variant overlay(s) on top; returns (document, chosen selection,
    problems). `variant`: one name or a combination `a+b`, applied left to right (a value both
    set is b's); None: the manifest's default_variant (which may be a combination too)."""
    variants = doc.data.get("variants") or {}
    if not isinstance(variants, dict):
        return doc, None, []  # the model reports the type error
    chosen = variant or doc.data.get("default_variant")
    problems = [
        _locate(doc, ("variants", name, key), f"'{key}' cannot be set in a variant")
        for name, overlay in variants.items()
        if isinstance(overlay, dict)
        for key in sorted(NOT_IN_VARIANTS & overlay.keys())
    ]
    if not variants:
        if variant:
            return doc, None, [Problem(doc.file, None, None, "variants", f"'{doc.data.get('name')}' has no variants, so ':{variant}' cannot be selected")]
        return doc, None, []
    if chosen is None:
        names = ", ".join(sorted(variants))
        return doc, None, problems + [_locate(doc, ("variants",), f"choose a variant ({names}): NAME:VARIANT, NAME:A+B to "
                                                                   "combine, or set default_variant")]
    where = ("default_variant",) if variant is None else ("variants",)
    if not isinstance(chosen, str):
        return doc, None, problems  # a default_variant that is not text: the model reports it
    parts = variant_parts(chosen)
    wrong = selection_problem(parts, chosen, variants)
    if wrong:
        return doc, None, problems + [_locate(doc, where, wrong)]
    for name in parts:
        if not isinstance(variants[name], dict):
            return doc, None, problems + [_locate(doc, ("variants", name), "a variant must be a mapping of manifest keys", key=False)]
    idle = _changes_nothing(parts, variants)
    if idle:
        return doc, None, problems + [_locate(doc, where, idle)]
    merged = doc
    for name in parts:
        # Re-root the variant's positions so that ("variants", "7b", "device", ...) → ("device", ...).
        prefix = ("variants", name)
        shifted = Positions(
            {p[2:]: pos for p, pos in doc.positions.values.items() if p[:2] == prefix and len(p) > 2},
            {p[2:]: pos for p, pos in doc.positions.keys.items() if p[:2] == prefix and len(p) > 2},
            {p[2:]: text for p, text in doc.positions.written.items() if p[:2] == prefix and len(p) > 2},
        )
        overlay = {k: v for k, v in variants[name].items() if k not in NOT_IN_VARIANTS}
        merged = merge(merged, Document(overlay, tagged(shifted, f"variant {name}"), doc.file))
    merged.data["variant"] = chosen
    return merged, chosen, problems


SEPARATOR = "+"  # NAME:14b+merged; '+' cannot be part of a variant's name (model.NAME_PATTERN)


def selection_problem(parts: list[str], chosen: str, variants: dict) -> str | None:
    """What is wrong with the names of a selection, or None: an empty name, one given twice, a
    name that is no variant (with the closest as a did-you-mean)."""
    known = ", ".join(sorted(map(str, variants)))
    if any(not part for part in parts):
        return f"'{chosen}' is not a variant selection: write NAME:VARIANT or NAME:A+B (no empty name around '+'); variants: {known}"
    for index, part in enumerate(parts):
        if part in parts[:index]:
            return f"'{chosen}' selects variant '{part}' twice; name each variant once"
    for part in parts:
        if part not in variants:
            hint = suggest(part, variants)
            return f"no variant '{part}'{hint}; variants: {known}"
    return None


def _leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, value) of every value an overlay sets; a mapping sets its keys (an empty one
    nothing, as merge leaves the lower mapping as it was)."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, path + (key,))]
    return [(path, value)]


def _changes_nothing(parts: list[str], variants: dict) -> str | None:
    """A combination in which a variant sets only values that later ones set again (`7b+14b`:
    every key 7b sets, 14b sets too) is two alternatives, not a combination; the earlier one
    would change nothing, which is never what was meant."""
    sets = {name: _leaves({k: v for k, v in variants[name].items() if k not in NOT_IN_VARIANTS}) for name in parts}
    for index, name in enumerate(parts):
        later = [path for other in parts[index + 1:] for path, _ in sets[other]]
        if not sets[name] or not later:
            continue

        def replaced(path: tuple, value: Any) -> bool:
            # A later value at this path or above it replaces it; one below it replaces a
            # scalar or list (a mapping takes its place), but not a removal (null): without
            # the removal the later keys would merge into what a lower layer had.
            return any(path[:len(q)] == q or (q[:len(path)] == path and value is not None) for q in later)

        if all(replaced(path, value) for path, value in sets[name]):
            overriders = [other for other in parts[index + 1:] if any(
                path[:len(q)] == q or q[:len(path)] == path for path, _ in sets[name] for q, _ in sets[other])]
            return (f"'{SEPARATOR.join(parts)}': every value variant '{name}' sets, {' and '.join(repr(o) for o in overriders)} "
                    f"sets again, so '{name}' would change nothing; they are alternatives, choose one")
    return None
