"""Driver versions against the manifest's specifier (PEP 440 rules, vendor spellings tolerated)."""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


def satisfies(found: str, required: str) -> bool | None:
    """True/False, or None when the found version cannot be compared ("23.0.RC3.B050")."""
    try:
        version = Version(found.lstrip("vV"))
    except InvalidVersion:
        return None
    return SpecifierSet(required).contains(version, prereleases=True)
