"""YAML text → plain Python data plus the file position of every key and value.

PyYAML's safe loader forgets positions and silently keeps the last of two duplicate keys; both
make errors useless ("somewhere in your manifest"). Here the document is composed into nodes
with the safe loader, then walked: scalars are built by PyYAML's SafeConstructor (so only plain
YAML types ever exist), duplicate keys are reported, and every path gets its position.
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


@dataclass
class Document:
    data: Any
    positions: Positions
    file: str


def _position(file: str, mark: Any) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


class _Walker:
    def __init__(self, file: str):
        self.file = file
        self.positions = Positions()
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def walk(self, node: yaml.Node, path: PathKey) -> Any:
        self.positions.values[path] = _position(self.file, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict:
        self.constructor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
        result: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                pos = _position(self.file, key_node.start_mark)
                self.problems.append(
                    Problem(pos.file, pos.line, pos.column, dotted(path), "a key must be a plain scalar")
                )
                continue
            raw_key = self.constructor.construct_object(key_node)
            # Keys such as `0:` or `true:` are text to us (env var names, artifact names).
            key = raw_key if isinstance(raw_key, str) else str(key_node.value)
            key_pos = _position(self.file, key_node.start_mark)
            if key in result:
                first = self.positions.keys[path + (key,)]
                self.problems.append(
                    Problem(
                        key_pos.file,
                        key_pos.line,
                        key_pos.column,
                        dotted(path + (key,)),
                        f"duplicate key '{key}' (first defined at line {first.line})",
                    )
                )
                continue
            self.positions.keys[path + (key,)] = key_pos
            result[key] = self.walk(value_node, path + (key,))
        return result


def parse_text(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML document. Returns (document or None, problems)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or str(exc)
        if exc.context:
            reason = f"{exc.context}, {reason}"
        return None, [Problem(file, line, column, "", f"YAML syntax error: {reason}")]
    except yaml.YAMLError as exc:  # e.g. multiple documents in one file
        return None, [Problem(file, None, None, "", f"YAML error: {exc}")]
    if node is None:
        return Document({}, Positions(), file), []
    walker = _Walker(file)
    data = walker.walk(node, ())
    return Document(data, walker.positions, file), walker.problems


def parse_file(path: Path) -> tuple[Document | None, list[Problem]]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(file, None, None, "", "file not found")]
    except UnicodeDecodeError as exc:
        return None, [Problem(file, None, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return None, [Problem(file, None, None, "", f"cannot read: {exc.strerror}")]
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
