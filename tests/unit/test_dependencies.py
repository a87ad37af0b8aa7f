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



def _declared_for_tests() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower() for spec in specs}


def test_every_module_the_tests_import_is_installed_by_the_project():
    """CI installs only `.[test]`: a test importing a library that came into a developer's venv
    some other way (bcrypt and cryptography through paramiko once) fails on a fresh machine."""
    import sys

    # The tests' own modules, and the demos they run (demo/ is put on their path).
    local = ({p.stem for p in (REPO / "tests").rglob("*.py")} | {p.stem for p in (REPO / "demo").rglob("*.py")}
             | {p.name for p in (REPO / "tests").rglob("*") if p.is_dir()})
    provided = {MODULE.get(name, name.replace("-", "_")) for name in _declared_for_tests()}
    # Modules the declared distributions bring along as their own parts.
    provided |= {"envctl", "_pytest", "pydantic_core"}
    missing = set()
    fixtures = REPO / "tests" / "fixtures"  # upstream files served to the stand-ins, never imported here
    for path in (p for p in (REPO / "tests").rglob("*.py") if not p.is_relative_to(fixtures)):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and top not in provided:
                    missing.add(f"{top} ({path.relative_to(REPO)})")
    assert sorted(missing) == []
