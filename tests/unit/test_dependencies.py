"""Nothing declared that nothing uses: every runtime dependency in pyproject.toml is imported
by envctl itself (paramiko was declared for years and never imported)."""

from __future__ import annotations

import ast
import re
import tomllib

from support import REPO

# Distribution name → the module it installs, where they differ.
MODULE = {"pyyaml": "yaml"}


def _declared() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]]


def _imported() -> set[str]:
    modules: set[str] = set()
    for path in (REPO / "envctl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_every_declared_dependency_is_imported():
    imported = _imported()
    declared = _declared()
    assert declared, "no dependencies read from pyproject.toml"
    unused = [name for name in declared if MODULE.get(name, name.replace("-", "_")) not in imported]
    assert unused == []

