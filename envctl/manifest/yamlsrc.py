"""YAML text → plain Python data plus the file position of every key and value.

PyYAML's safe loader forgets positions and silently keeps the last of two duplicate keys; both
make errors useless ("somewhere in your manifest"). Here the document is composed into nodes
with the safe loader, then walked: scalars are built by PyYAML's SafeConstructor (so only plain
YAML types ever exist), duplicate keys are reported, and every path gets its position.

Merge keys (`<<: *anchor`, `<<: [*a, *b]`) follow https://yaml.org/type/merge.html: keys
written in the mapping itself win over merged ones, and of several merged mappings the first
listed wins. Only two keys written in the same mapping are duplicates.

Unquoted scalars that YAML 1.1 reads as numbers or booleans keep the text they were written
as (`Positions.written`), so that a field which turns the value back into text can tell
`1.10` (read as 1.1), `0022` (octal 18) or `22:22` (base 60: 1342) from what was meant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from envctl.errors import Problem

PathKey = tuple  # a path into the data: ("artifacts", "chatglm3-6b", "source") or ("setup", 0)


@dataclass(frozen=True)
class Position:
    file: str
    line: int  # 1-based, as editors show them
    column: int  # 1-based


@dataclass
class Positions:
    """Where each value (and each mapping key) of a document was written."""

    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)
    # path → the text of an unquoted scalar that YAML resolved to a number, boolean, null or date
    written: dict[PathKey, str] = field(default_factory=dict)

    def of_value(self, path: PathKey) -> Position | None:
        """The position of the value at `path`, or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            found = self.values.get(tuple(path[:end]))
            if found is not None:
                return found
        return None

    def of_key(self, path: PathKey) -> Position | None:
        return self.keys.get(tuple(path)) or self.of_value(path)

    def update(self, other: "Positions") -> None:
        self.values.update(other.values)
        self.keys.update(other.keys)
        self.written.update(other.written)


@dataclass
class Document:
    data: Any
    positions: Positions
    file: str


def _position(file: str, mark: Any) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_TYPED_TAGS = {f"tag:yaml.org,2002:{kind}" for kind in ("int", "float", "bool", "null", "timestamp")}


# Values a document may hold once its aliases are expanded. Aliases of aliases multiply
# (`&b [*a, *a, ...]`): twelve lines can expand to a billion values ("billion laughs", as in
# Kubernetes' CVE-2019-11253), and every value here gets a path and a position. The largest
# shipped manifest holds a few hundred.
MAX_VALUES = 100_000
# Nesting a manifest may have: its deepest value (variants.<v>.container.ulimits.<name>) is six
# levels down; far deeper nesting would exhaust Python's recursion limit in later steps.
MAX_DEPTH = 64


class _TooManyValues(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


class _Walker:
    def __init__(self, file: str):
        self.file = file
        self.walked = 0
        self.positions = Positions()
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.resolved: dict[int, list] = {}  # id(mapping node) → its pairs, merge keys applied
        self.resolving: set[int] = set()

    def _problem(self, mark: Any, path: PathKey, message: str) -> None:
        pos = _position(self.file, mark)
        self.problems.append(Problem(pos.file, pos.line, pos.column, dotted(path), message))

    def walk(self, node: yaml.Node, path: PathKey) -> Any:
        self.walked += 1
        if self.walked > MAX_VALUES:
            raise _TooManyValues(node)
        self.positions.values[path] = _position(self.file, node.start_mark)
        if len(path) >= MAX_DEPTH and isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            self._problem(node.start_mark, path, f"nested more than {MAX_DEPTH} levels deep; no manifest field is")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, path + (i,)) for i, item in enumerate(node.value)]
        if node.style is None and node.tag in _TYPED_TAGS:
            self.positions.written[path] = node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.constructor.ConstructorError, ValueError) as exc:
            # An unknown tag (!!python/object, !foo) or a value its tag cannot hold (!!int abc).
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else f"'{node.value}' is not a valid {node.tag.rsplit(':', 1)[-1]}"
            self._problem(node.start_mark, path, f"YAML error: {reason}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict:
        result: dict = {}
        for key, key_node, value_node in self._pairs(node, path):
            self.positions.keys[path + (key,)] = _position(self.file, key_node.start_mark)
            result[key] = self.walk(value_node, path + (key,))
        return result

    def _pairs(self, node: yaml.MappingNode, path: PathKey) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The (key, key node, value node) a mapping holds once its merge keys are applied.

        Done here rather than by PyYAML's flatten_mapping, which since its merge-key DoS fix
        (yaml/pyyaml#937) drops merged pairs whose key *string object* was seen before: which
        of `<<: [*a, *b]` wins, and whether a nested override (`train: {<<: *base, p: 2}`
        merged again elsewhere) survives, then depends on CPython's string interning
        (yaml/pyyaml#953). Here a merged mapping contributes exactly what it holds itself. Computed once per node: an anchored mapping is walked again
        wherever it is aliased, and its problems are reported once, where it is written.
        """
        done = self.resolved.get(id(node))
        if done is not None:
            return done
        if id(node) in self.resolving:
            self._problem(node.start_mark, path, "YAML error: a mapping merges itself (<<: refers to its own anchor)")
            return []
        self.resolving.add(id(node))
        own: dict[str, tuple[str, yaml.Node, yaml.Node]] = {}
        sources: list[yaml.Node] = []
        first_merge: yaml.Node | None = None
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                if first_merge is not None:
                    # Two `<<` keys are two equal keys (go-yaml refuses them; PyYAML lets the
                    # later win): say how to merge several mappings instead.
                    line = _position(self.file, first_merge.start_mark).line
                    self._problem(key_node.start_mark, path + ("<<",), f"duplicate key '<<' (first defined at line {line}); "
                                                                       f"merge several mappings with one <<: [*a, *b] (the first listed wins)")
                    continue
                first_merge = key_node
                listed = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in listed:
                    if isinstance(source, yaml.MappingNode):
                        sources.append(source)
                    else:
                        self._problem(source.start_mark, path, f"YAML error: `<<` merges mappings (an alias such as *defaults, or a list of them), not a {source.id}")
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in own:
                first = _position(self.file, own[key][1].start_mark)
                self._problem(key_node.start_mark, path + (key,), f"duplicate key '{key}' (first defined at line {first.line})")
                continue
            own[key] = (key, key_node, value_node)
        merged: dict[str, tuple[str, yaml.Node, yaml.Node]] = {}
        for source in sources:  # the first listed mapping wins (https://yaml.org/type/merge.html)
            for pair in self._pairs(source, path):
                merged.setdefault(pair[0], pair)
        self.resolving.discard(id(node))
        # The mapping's own keys win; keys in the order yaml.safe_load gives (merged ones first).
        pairs = [own.get(key, pair) for key, pair in merged.items()] + [pair for key, pair in own.items() if key not in merged]
        self.resolved[id(node)] = pairs
        return pairs

    def _key(self, key_node: yaml.Node, path: PathKey) -> str | None:
        if not isinstance(key_node, yaml.ScalarNode):
            self._problem(key_node.start_mark, path, "a key must be a plain scalar")
            return None
        try:
            raw_key = self.constructor.construct_object(key_node)
        except (yaml.constructor.ConstructorError, ValueError):
            raw_key = None
        # Keys such as `0:` or `true:` are text to us (env var names, artifact names).
        return raw_key if isinstance(raw_key, str) else str(key_node.value)


def parse_text(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML document. Returns (document or None, problems)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:  # PyYAML composes nested collections recursively; its parser does not
        line, column = _too_deep(text)
        return None, [Problem(file, line, column, "", f"nested more than {MAX_DEPTH} levels deep; no manifest field is")]
    except yaml.reader.ReaderError as exc:
        # A control character (a form feed or escape pasted from a terminal, a NUL): PyYAML
        # gives only its offset in the text.
        line, column = _line_column(text, exc.position)
        return None, [Problem(file, line, column, "", f"the character U+{exc.character:04X} cannot appear in YAML "
                                                      f"(a control character); remove it")]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or str(exc)
        if exc.context and exc.context.startswith("found duplicate anchor") and exc.context_mark:
            # PyYAML's words are "found duplicate anchor 'a'; first occurrence, second occurrence".
            anchor = exc.context.split(";")[0].removeprefix("found duplicate anchor ")
            reason = f"anchor {anchor} is defined twice (first at line {exc.context_mark.line + 1}); give each anchor its own name"
        elif exc.context:
            context = exc.context
            if exc.context_mark and mark and exc.context_mark.line != mark.line:
                context += f" (from line {exc.context_mark.line + 1})"
            reason = f"{context}, {reason}"
        if mark and 0 < mark.index < len(text) and text[mark.index - 1:mark.index + 1] == "${":
            # `cap_add: [${CAP}]`: inside [ ] or { } YAML reads the brace as a mapping.
            reason += "; inside [ ] or { } a value holding ${...} must be quoted: \"${NAME}\""
        return None, [Problem(file, line, column, "", f"YAML syntax error: {reason}")]
    except yaml.YAMLError as exc:  # e.g. multiple documents in one file
        return None, [Problem(file, None, None, "", f"YAML error: {exc}")]
    if node is None:
        return Document({}, Positions(), file), []
    walker = _Walker(file)
    try:
        data = walker.walk(node, ())
    except _TooManyValues as exc:
        pos = _position(file, exc.node.start_mark)
        return None, [Problem(file, pos.line, pos.column, "", f"aliases expand the document to more than {MAX_VALUES} values "
                                                              f"(aliases of aliases multiply); write the values out or reuse fewer")]
    return Document(data, walker.positions, file), walker.problems


def _too_deep(text: str) -> tuple[int | None, int | None]:
    """Where the collections of `text` first nest deeper than MAX_DEPTH, read event by event."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return event.start_mark.line + 1, event.start_mark.column + 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None, None


def _line_column(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` (characters of text, or bytes of bytes)."""
    newline = "\n" if isinstance(text, str) else b"\n"
    return text.count(newline, 0, offset) + 1, offset - (text.rfind(newline, 0, offset) + 1) + 1


def parse_file(path: Path) -> tuple[Document | None, list[Problem]]:
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [Problem(file, None, None, "", "file not found")]
    except OSError as exc:
        return None, [Problem(file, None, None, "", f"cannot read: {exc.strerror}")]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, [Problem(file, 1, 1, "", "the file is UTF-16 text (as some Windows editors save it); save it as UTF-8")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Often a comment saved as GBK or Latin-1: say where, so that it can be found.
        line, column = _line_column(raw, exc.start)
        return None, [Problem(file, line, column, "", f"not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                                      f"save the file as UTF-8")]
    return parse_text(text, file)


def dotted(path: PathKey) -> str:
    """("setup", 0, "run") → "setup[0].run"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _AsWrittenDumper(yaml.SafeDumper):
    """Writes text as people write it in a manifest: a multi-line `run:` script as a literal
    block (`|`), long lines unfolded. PyYAML's default writes `'line one\n\n  line two\n\n'` and
    folds lines at its width, which reads back alike but looks nothing like what was written."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # A literal block cannot hold trailing spaces on a line or a tab; PyYAML falls back by itself.
    style = "|" if "\n" in text.rstrip("\n") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_AsWrittenDumper.add_representer(str, _represent_text)


def dump(data: Any) -> str:
    """YAML text of `data` (plain Python values) that reads back to the same data."""
    return yaml.dump(data, Dumper=_AsWrittenDumper, sort_keys=False, allow_unicode=True, width=float("inf"))
