"""The loader's check of multi-node entrypoints: a command still pinned to one node is refused
at the line of the pin (envctl.nodes.pins finds them)."""

from __future__ import annotations

from pathlib import Path

from envctl.errors import Problem
from envctl.manifest.yamlsrc import Document, dotted
from envctl.nodes.pins import LAUNCHERS, pin_problems


def problems(data: dict, doc: Document) -> list[Problem]:
    """Problems of every entrypoint that declares `nodes:`, each at its file:line. Reads the raw
    (expanded) data defensively: shapes the model refuses are reported by the model."""
    found: list[Problem] = []
    entrypoints = data.get("entrypoints")
    for name, entry in (entrypoints.items() if isinstance(entrypoints, dict) else []):
        nodes = entry.get("nodes") if isinstance(entry, dict) else None
        if not isinstance(nodes, dict) or nodes.get("launcher") not in LAUNCHERS:
            continue
        path = ("entrypoints", name, "nodes", "run") if nodes.get("run") is not None else ("entrypoints", name, "run")
        run = nodes.get("run") if nodes.get("run") is not None else entry.get("run")
        is_argv = isinstance(run, list) and bool(run) and all(isinstance(item, str) for item in run)
        if not is_argv and not (isinstance(run, str) and run.strip()):
            continue
        for pin in pin_problems(run, nodes["launcher"]):
            where = path + (pin.line,) if isinstance(run, list) else path
            found.append(_located(doc, where, pin.line if isinstance(run, str) else 0, pin.message))
    return found


def _located(doc: Document, path: tuple, line_in_text: int, message: str) -> Problem:
    """The problem at the pinned line itself where the command is a literal block (`run: |`),
    whose lines are the file's lines one for one; else at the command's start."""
    pos = doc.positions.of_value(path)
    if pos is None:
        return Problem(doc.file, None, None, dotted(path), message)
    line, column = pos.line, pos.column
    try:
        lines = Path(pos.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    if 0 < line <= len(lines) and lines[line - 1][column - 1:column] == "|" and line + line_in_text < len(lines):
        text = lines[line + line_in_text]
        line, column = line + 1 + line_in_text, len(text) - len(text.lstrip()) + 1
    return Problem(pos.file, line, column, dotted(path), message)
