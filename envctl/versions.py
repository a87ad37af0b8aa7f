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
(24.1.rc2 or 24.1.rc2.0); `==24.1.rc2.*` takes its patches too. Components count as written in
`==X.*` and `~=`: `==24.0.*` is 24.0.x only and `~=5.10.0` is `>=5.10.0, ==5.10.*` (PEP 440).

A found version with a component envctl cannot order (builds as npu-smi prints them:
`25.0.rc1.b010`, `23.0.RC3.B050`; service packs: `20.2.2.spc001`) is known to lie inside the
range of its orderable head (`25.0.rc1.<anything>`), so a specifier that is decided the same
way across that whole range is answered (`>=24.1.0` admits 25.0.rc1.b010); one whose boundary
falls inside it (`>=25.0.rc1`, `==25.0.rc1`) is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Rank of a component's kind: pre-release tags sort below any number at the same position.
_RANKS = {"alpha": 0, "beta": 1, "rc": 2}
_NUMBER = 3
_COMPONENT = re.compile(r"(?:(alpha|beta|rc)(\d*)|(\d+))")
_CLAUSE = re.compile(r"^\s*(===|==|!=|~=|<=|>=|<|>)\s*(\S+?)\s*$")


# Sentinels for an unorderable tail: below any alpha tag, above any number at that position.
_BELOW_ALL = (-1, 0)
_ABOVE_ALL = (_NUMBER + 1, 0)


@dataclass(frozen=True)
class VendorVersion:
    """A parsed version: `components` are (rank, number) pairs as written ("5.10.0" has three;
    `==X.*` and `~=` count them), compared with missing components read as 0."""

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
        significant = list(self.components)
        while significant and significant[-1] == (_NUMBER, 0):
            significant.pop()
        return hash(tuple(significant))

    def starts_with(self, prefix: tuple[tuple[int, int], ...]) -> bool:
        """Whether the first len(prefix) components (missing ones read as 0) are `prefix`."""
        return self._padded(len(prefix))[: len(prefix)] == prefix


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
    return VendorVersion(cleaned, tuple(components))


def _orderable_head(text: str) -> tuple[tuple[int, int], ...] | None:
    """The components before the first one envctl cannot order ('25.0.rc1.b010' → 25.0.rc1);
    None when there is no such head (nothing orderable, or it does not start with a number)."""
    body = text.strip()[1:] if text.strip()[:1] in ("v", "V") else text.strip()
    head: list[tuple[int, int]] = []
    for part in body.lower().split("."):
        match = _COMPONENT.fullmatch(part)
        if match is None:
            break
        tag, tag_number, number = match.groups()
        head.append((_RANKS[tag], int(tag_number or 0)) if tag else (_NUMBER, int(number)))
    if not head or head[0][0] != _NUMBER or len(head) == len(body.split(".")):
        return None
    return tuple(head)


@dataclass(frozen=True)
class Clause:
    operator: str
    version: VendorVersion
    wildcard: bool = False  # "==24.1.*": any version starting with these components

    def admits(self, found: VendorVersion) -> bool:
        if self.wildcard:
            inside = found.starts_with(self.version.components)
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
        return self.version <= found and found.starts_with(self.version.components[:-1])

    def decided_across(self, head: tuple[tuple[int, int], ...]) -> bool:
        """Whether this clause answers the same for every version head.<anything>: no version
        it names, and no range `X.*` it names, begins inside that range."""
        ranges = []  # prefixes of the X.* ranges this clause names
        if self.wildcard:
            ranges.append(self.version.components)
        else:
            if self.version.starts_with(head):
                return False
            if self.operator == "~=":
                ranges.append(self.version.components[:-1])
        return not any(len(r) > len(head) and r[: len(head)] == head for r in ranges)


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
    cannot be ordered against it (a build such as '23.0.RC3.B050' against '>=23.0.rc3', whose
    place beside 23.0.rc3 no vendor document states; against '>=23.0.rc1' it is True). Raises
    SpecifierError when `required` is not a specifier (manifest validation refuses those first)."""
    clauses = parse_specifier(required)
    try:
        version = parse_version(found)
    except ValueError:
        head = _orderable_head(found)
        if head is None or not all(clause.decided_across(head) for clause in clauses):
            return None
        # Every clause answers alike across head.<anything>; its lowest point stands for all.
        version = VendorVersion(found, head + (_BELOW_ALL,))
    return all(clause.admits(version) for clause in clauses)
