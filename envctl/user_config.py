"""The user's own configuration file: one place for a lab's mirrors.

The file is `ENVCTL_CONFIG` when set (it must then exist), else
`$XDG_CONFIG_HOME/envctl/config.yaml` (default `~/.config/envctl/config.yaml`) when it exists.
Its shape:

    mirrors:
      huggingface: https://hf-mirror.com          # as HF_ENDPOINT
      modelscope: https://modelscope.example.cn   # as MODELSCOPE_ENDPOINT
      git: {"https://github.com/": "https://gitee.com/mirrors/"}   # URL prefix rewrites
      registries: {"quay.io": "m.daocloud.io/quay.io", "docker.io": "docker.m.daocloud.io"}
      pip: https://pypi.tuna.tsinghua.edu.cn/simple                 # handed to containers as PIP_INDEX_URL

Environment variables still win over the file (HF_ENDPOINT over mirrors.huggingface, and so
on): `environ_defaults` gives the variables the file implies, to be laid *under* the caller's
environment. Every problem is reported at once, as file:line:column: path: message (exit 3).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envctl.errors import ManifestError, Problem
from envctl.manifest.yamlsrc import Document, PathKey, dotted, parse_file

SECTIONS = ("mirrors",)
MIRROR_KINDS = ("huggingface", "modelscope", "git", "registries", "pip")
# The variable each single-URL mirror stands for; the tools users know read the same ones.
MIRROR_VARIABLES = {"huggingface": "HF_ENDPOINT", "modelscope": "MODELSCOPE_ENDPOINT", "pip": "PIP_INDEX_URL"}


@dataclass(frozen=True)
class Mirrors:
    """Where envctl (and the containers it runs) download from instead of the public services.

    `git`: URL prefix → replacement prefix, the longest matching prefix applies.
    `registries`: registry host (as in an image reference: quay.io, docker.io, host:port) →
    the mirror's repository prefix (`m.daocloud.io/quay.io`)."""

    huggingface: str | None = None
    modelscope: str | None = None
    git: dict[str, str] = field(default_factory=dict, hash=False)
    registries: dict[str, str] = field(default_factory=dict, hash=False)
    pip: str | None = None


@dataclass(frozen=True)
class UserConfig:
    path: Path | None = None  # the file read; None when there is none
    mirrors: Mirrors = field(default_factory=Mirrors)


def config_path(environ: Mapping[str, str]) -> Path | None:
    """ENVCTL_CONFIG (returned even when missing, so that loading says so), else
    $XDG_CONFIG_HOME/envctl/config.yaml (~/.config/...) when it exists, else None. Only
    `environ` is consulted for the home directory."""
    given = environ.get("ENVCTL_CONFIG")
    if given:
        return Path(_expand_home(given, environ))
    base = environ.get("XDG_CONFIG_HOME") or (os.path.join(environ["HOME"], ".config") if environ.get("HOME") else None)
    if base is None:
        return None
    default = Path(_expand_home(base, environ)) / "envctl" / "config.yaml"
    return default if default.is_file() else None


def _expand_home(path: str, environ: Mapping[str, str]) -> str:
    if (path == "~" or path.startswith("~/")) and environ.get("HOME"):
        return environ["HOME"] + path[1:]
    return path


def load(environ: Mapping[str, str] | None = None) -> UserConfig:
    """The user's configuration (see config_path); an empty UserConfig when there is no file.
    Raises ManifestError listing every problem of the file."""
    environ = os.environ if environ is None else environ
    found = config_path(environ)
    if found is None:
        return UserConfig()
    doc, problems = parse_file(found)
    if doc is None:
        hint = "the path comes from ENVCTL_CONFIG" if environ.get("ENVCTL_CONFIG") else None
        raise ManifestError(problems, hint=hint)
    return _read(doc, found, list(problems))


def environ_defaults(mirrors: Mirrors) -> dict[str, str]:
    """The environment variables the mirrors imply (HF_ENDPOINT, MODELSCOPE_ENDPOINT,
    PIP_INDEX_URL), to be overridden by the caller's own: `{**environ_defaults(m), **environ}`."""
    return {variable: getattr(mirrors, kind) for kind, variable in MIRROR_VARIABLES.items() if getattr(mirrors, kind)}


def _kind(value: Any) -> str:
    return {str: "text", int: "a number", float: "a number", bool: "a boolean", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(value), type(value).__name__)


def _read(doc: Document, path: Path, problems: list[Problem]) -> UserConfig:
    def report(at: PathKey, message: str, key: bool = False) -> None:
        pos = doc.positions.of_key(at) if key else doc.positions.of_value(at)
        problems.append(Problem(doc.file, pos.line if pos else 1, pos.column if pos else 1, dotted(at), message))

    top = doc.data if doc.data is not None else {}
    if not isinstance(top, dict):
        report((), f"the configuration is a mapping (mirrors:), got {_kind(top)}")
        raise ManifestError(problems)
    for key in top:
        if key not in SECTIONS:
            report((key,), f"unknown section '{key}'; sections: {', '.join(SECTIONS)}", key=True)
    raw = top.get("mirrors") or {}
    values: dict[str, Any] = {}
    if not isinstance(raw, dict):
        report(("mirrors",), f"expected a mapping of mirrors ({', '.join(MIRROR_KINDS)}), got {_kind(raw)}")
        raw = {}
    for kind, value in raw.items():
        at = ("mirrors", kind)
        if kind not in MIRROR_KINDS:
            report(at, f"unknown mirror '{kind}'; mirrors: {', '.join(MIRROR_KINDS)}", key=True)
        elif value is None:
            continue
        elif kind in ("git", "registries"):
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v
                                                      for k, v in value.items()):
                report(at, f"expected a mapping of text to text, got {_kind(value)}")
            else:
                values[kind] = dict(value)
        elif not isinstance(value, str) or not value.startswith(("http://", "https://")):
            report(at, f"expected an http(s):// URL, got {_kind(value)}")
        else:
            values[kind] = value.rstrip("/") if kind != "pip" else value
    if problems:
        raise ManifestError(problems)
    return UserConfig(path=path, mirrors=Mirrors(**values))
