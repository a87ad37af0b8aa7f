"""Layering: profiles under a manifest (`extends`), a variant on top (`NAME:VARIANT`).

Mappings merge key by key; lists and scalars from the upper layer replace the lower one, and an
explicit null removes what a lower layer set (`ulimits: {memlock: null}`). Each
merged value keeps the position of the layer it came from, so an error in a value a profile
supplied points into the profile file.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from envctl.errors import Problem
from envctl.manifest.discovery import find_profile, profile_names
from envctl.manifest.yamlsrc import Document, Positions, dotted, parse_file

# A profile supplies defaults; these belong to the manifest (or the profile file) alone.
PROFILE_ONLY_KEYS = {"description", "extends"}
NOT_IN_PROFILES = {"name", "variants", "default_variant", "variant"}
NOT_IN_VARIANTS = {"name", "extends", "variants", "default_variant", "variant"}


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
            close = difflib.get_close_matches(name, profile_names(profile_dirs), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
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
            profile.positions,
            profile.file,
        )
        base = layer if base is None else merge(base, layer)
    if base is None:
        return doc, problems
    return merge(base, doc), problems


def apply_variant(doc: Document, variant: str | None) -> tuple[Document, str | None, list[Problem]]:
    """Merge the selected variant overlay on top; returns (document, chosen variant, problems)."""
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
        return doc, None, problems + [_locate(doc, ("variants",), f"choose a variant ({names}): NAME:VARIANT or set default_variant")]
    if chosen not in variants:
        close = difflib.get_close_matches(str(chosen), list(variants), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        where = ("default_variant",) if variant is None else ("variants",)
        return doc, None, problems + [_locate(doc, where, f"no variant '{chosen}'{hint}; variants: {', '.join(sorted(variants))}")]
    overlay = variants[chosen]
    if not isinstance(overlay, dict):
        return doc, None, problems + [_locate(doc, ("variants", chosen), "a variant must be a mapping of manifest keys", key=False)]
    # Re-root the variant's positions so that ("variants", "7b", "device", ...) → ("device", ...).
    prefix = ("variants", chosen)
    shifted = Positions(
        {p[2:]: pos for p, pos in doc.positions.values.items() if p[:2] == prefix and len(p) > 2},
        {p[2:]: pos for p, pos in doc.positions.keys.items() if p[:2] == prefix and len(p) > 2},
        {p[2:]: text for p, text in doc.positions.written.items() if p[:2] == prefix and len(p) > 2},
    )
    layer = Document({k: v for k, v in overlay.items() if k not in NOT_IN_VARIANTS}, shifted, doc.file)
    merged = merge(doc, layer)
    merged.data["variant"] = chosen
    return merged, chosen, problems
