"""The did-you-mean of every "no such name" message (keys, variants, profiles, manifests, vars):
one rule, in a module light enough for start-up paths (no pydantic)."""

from __future__ import annotations

import difflib
from typing import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` most likely meant: the same name in other case first (`A` for a
    variant `a`, `Device` for `device`: difflib scores one-letter names 0 and never ignores
    case), else the closest by difflib (ratio >= 0.6), else None."""
    names = [str(c) for c in candidates]
    same = [c for c in names if c.lower() == str(word).lower() and c != str(word)]
    close = same or difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'NAME'?)`, or "" when nothing is close."""
    close = closest(word, candidates)
    return f" (did you mean '{close}'?)" if close else ""
