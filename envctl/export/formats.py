"""The registry of export formats. A format module of this package defines `FORMAT = Format(...)`;
load_all imports every module of the package and registers each FORMAT, so a new format needs
no change here or in the CLI."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from envctl.errors import EXIT_USAGE, EnvctlError

DEFAULT = "volcano"


@dataclass(frozen=True)
class Format:
    name: str
    summary: str  # one line: what it writes, for --help and the README
    write: Callable  # (Export) -> dict[str, str]: relative file name -> text (README.md is added)
    how_to_run: Callable  # (Export) -> list[str]: README lines: how to submit or start it, what the engine needs
    check: Callable | None = None  # (directory: Path, crds: list[Path]) -> list[Problem]; offline validation


_FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    _FORMATS[fmt.name] = fmt
    return fmt


def load_all() -> dict[str, Format]:
    """Every format of the package, by name (imports each module that defines FORMAT)."""
    import envctl.export as package

    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"envctl.export.{info.name}")
        fmt = getattr(module, "FORMAT", None)
        if isinstance(fmt, Format):
            register(fmt)
    return dict(sorted(_FORMATS.items()))


def get(name: str) -> Format:
    formats = load_all()
    if name not in formats:
        raise EnvctlError(f"--format {name}: no such export format; formats: {', '.join(formats)}", exit_code=EXIT_USAGE)
    return formats[name]


def format_of(directory: Path) -> str | None:
    """The format an export directory was written in (its .envctl-export marker), or None."""
    marker = directory / ".envctl-export"
    try:
        return marker.read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        return None
