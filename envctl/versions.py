"""Driver versions as vendors write them, and the specifiers manifests check them against.

Vendors do not follow PEP 440. Huawei numbers Ascend driver (HDK) releases `23.0.rc1`,
`23.0.rc2`, `23.0.rc3`, then `23.0.0`, `23.0.1`, ...; patches of a release candidate add a
number (`24.1.rc2.1`, `24.1.rc2.2`, as `version.info` and `npu-smi info` print them), and
the spelling of `rc` varies (`24.1.RC2` in release notes, `24.1.rc2` in `version.info`). These
release candidates are shipping releases: the matrices of MindSpore and CANN name them as the
driver to install (MindSpore 2.3.0 with driver 24.1.RC2, 2.1.0 with 23.0.rc2). CANN toolkits add
`alpha`/`beta` builds before a release (`8.0.RC2.alpha003`, `7.0.0.beta1`). Cambricon and NVIDIA
drivers are plain numbers (`5.10.22`, `535.104.05`).

Ordering (component by component, a missing component read as 0):
  alpha N < beta N < rc N < any number at the same position, so
  23.0.rc1 < 23.0.rc2 < 23.0.rc3 < 23.0.0 < 23.0.1 and
  24.1.rc2 < 24.1.rc2.1 < 24.1.rc2.2 < 24.1.rc3 < 24.1.0, and
  8.0.rc2.alpha003 < 8.0.rc2.beta1 < 8.0.rc2 < 8.0.0.
Tags are case-insensitive and a leading `v` is ignored ("v5.10.22").

Specifiers use PEP 440's operators (`==`, `!=`, `<`, `<=`, `>`, `>=`, `~=`, `==X.*`, several
joined by commas), compared in the order above. Unlike PEP 440, a release candidate is never
excluded for being a pre-release: `<24.1.0` admits 24.1.rc3 (it is older than 24.1.0), and
`>=23.0.rc3` admits 23.0.rc3, 23.0.rc3.1, 23.0.0 and later. `==24.1.rc2` is that release only
(24.1.rc2 or 24.1.rc2.0); `==24.1.rc2.*` takes its patches too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Rank of a component's kind: pre-release tags sort below any number at the same position.
_RANKS = {"alpha": 0, "beta": 1, "rc": 2}
_NUMBER = 3
_COMPONENT = re.compile(r"(?:(alpha|beta|rc)(\d*)|(\d+))")
_CLAUSE = re.compile(r"^\s*(===|==|!=|~=|<=|>=|<|>)\s*(\S+?)\s*$")


@dataclass(frozen=True)
class VendorVersion:
    """A parsed version: `components` are (rank, number) pairs, trailing zeros dropped."""

    text: str
    components: tuple[tuple[int, int], ...]

    def _padded(self, length: int) -> tuple[tuple[int, int], ...]:
        return self.components + ((_NUMBER, 0),) * (length - len(self.components))

    def _key(self, other: "VendorVersion"):
        length = max(len(self.components), len(other.components))
        return self._padded(length), other._padded(length)

    def __lt__(self, other: "VendorVersion") -> bool:
        mine, theirs = self._key(other)
        return mine < theirs

    def __le__(self, other: "VendorVersion") -> bool:
        mine, theirs = self._key(other)
        return mine <= theirs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VendorVersion):
            return NotImplemented
        mine, theirs = self._key(other)
        return mine == theirs

    def __hash__(self) -> int:
        return hash(self.components)


def parse_version(text: str) -> VendorVersion:
    """'24.1.rc2.2' → VendorVersion. Raises ValueError for anything else (e.g. an internal build
    '23.0.RC3.B050', whose place between releases no vendor document states)."""
    cleaned = text.strip()
    body = cleaned[1:] if cleaned[:1] in ("v", "V") else cleaned
    if not body:
        raise ValueError(f"'{text}' is not a version")
    components: list[tuple[int, int]] = []
    for part in body.lower().split("."):
        match = _COMPONENT.fullmatch(part)
        if match is None:
            raise ValueError(f"'{text}' is not a version envctl can order (component '{part}')")
        tag, tag_number, number = match.groups()
        components.append((_RANKS[tag], int(tag_number or 0)) if tag else (_NUMBER, int(number)))
    if components[0][0] != _NUMBER:
        raise ValueError(f"'{text}' does not start with a number")
    while components and components[-1] == (_NUMBER, 0):
        components.pop()
    return VendorVersion(cleaned, tuple(components))


@dataclass(frozen=True)
class Clause:
    operator: str
    version: VendorVersion
    wildcard: bool = False  # "==24.1.*": any version starting with these components

    def admits(self, found: VendorVersion) -> bool:
        if self.wildcard:
            prefix = self.version.components
            inside = found._padded(len(prefix))[: len(prefix)] == prefix
            return inside if self.operator == "==" else not inside
        if self.operator in ("==", "==="):
            return found == self.version
        if self.operator == "!=":
            return not found == self.version
        if self.operator == "<":
            return found < self.version
        if self.operator == "<=":
            return found <= self.version
        if self.operator == ">":
            return self.version < found
        if self.operator == ">=":
            return self.version <= found
        # "~=X.Y.Z": >= X.Y.Z and == X.Y.*
        prefix = self.version.components[:-1]
        return self.version <= found and found._padded(len(prefix))[: len(prefix)] == prefix


class SpecifierError(ValueError):
    """A specifier envctl cannot read; `reason` says what is wrong beyond the syntax (or None)."""

    def __init__(self, text: str, reason: str | None = None):
        super().__init__(f"'{text}' is not a version specifier" + (f": {reason}" if reason else ""))
        self.reason = reason


def parse_specifier(text: str) -> tuple[Clause, ...]:
    """'>=23.0.rc3, <24.1.0' → clauses. Raises SpecifierError."""
    clauses = []
    for raw in text.split(","):
        match = _CLAUSE.match(raw)
        if match is None:
            raise SpecifierError(text)
        operator, version = match.groups()
        wildcard = version.endswith(".*")
        if wildcard and operator not in ("==", "!="):
            raise SpecifierError(text, f"'{raw.strip()}': a trailing .* is only allowed with == or !=")
        if operator == "~=" and len(version.split(".")) < 2:
            raise SpecifierError(text, f"'{raw.strip()}': ~= needs at least two components (e.g. ~=5.10)")
        try:
            parsed = parse_version(version[:-2] if wildcard else version)
        except ValueError as exc:
            raise SpecifierError(text, str(exc)) from None
        clauses.append(Clause(operator, parsed, wildcard))
    return tuple(clauses)


def satisfies(found: str, required: str) -> bool | None:
    """Whether the found driver version meets the specifier; None when the found version
    cannot be ordered (an internal build such as '23.0.RC3.B050'). Raises SpecifierError when
    `required` is not a specifier (manifest validation refuses those first)."""
    clauses = parse_specifier(required)
    try:
        version = parse_version(found)
    except ValueError:
        return None
    return all(clause.admits(version) for clause in clauses)
