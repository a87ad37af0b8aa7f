"""Where envctl keeps things on a host: the artifact cache and per-environment workspaces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


WORKSPACE_TARGET = "/envctl"  # the environment's workspace inside the container (logs, state)


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """ENVCTL_CACHE, else $XDG_CACHE_HOME/envctl, else ~/.cache/envctl."""
    environ = os.environ if environ is None else environ
    if environ.get("ENVCTL_CACHE"):
        return Path(environ["ENVCTL_CACHE"]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME", "~"), ".cache")
    return Path(base).expanduser() / "envctl"


# In each workspace: the mark of the container that mounts it (a random token, also its label
# containers.LABEL_WORKSPACE_MARK). A workspace deleted and made again, or replaced, lacks it:
# the running container's /envctl is then not this directory (observe.py).
WORKSPACE_MARK = ".envctl-workspace"


def workspace_dir(container_name: str, environ: Mapping[str, str] | None = None) -> Path:
    """ENVCTL_WORKSPACE/<container>, else $XDG_DATA_HOME/envctl/workspaces/<container>.
    Holds what must outlive the container: logs, checkpoints, writable artifact copies."""
    environ = os.environ if environ is None else environ
    if environ.get("ENVCTL_WORKSPACE"):
        return Path(environ["ENVCTL_WORKSPACE"]).expanduser() / container_name
    base = environ.get("XDG_DATA_HOME") or os.path.join(environ.get("HOME", "~"), ".local", "share")
    return Path(base).expanduser() / "envctl" / "workspaces" / container_name


def expand_home(path: str, environ: Mapping[str, str]) -> str:
    """`~` and `~/...` with `environ`'s HOME (only `environ` is consulted, so that a test passing
    its own never sees the real home); other paths as they are."""
    if (path == "~" or path.startswith("~/")) and environ.get("HOME"):
        return environ["HOME"] + path[1:]
    return path


def config_home(environ: Mapping[str, str]) -> Path | None:
    """$XDG_CONFIG_HOME/envctl, else ~/.config/envctl; None without either variable."""
    base = environ.get("XDG_CONFIG_HOME") or (os.path.join(environ["HOME"], ".config") if environ.get("HOME") else None)
    return None if base is None else Path(expand_home(base, environ)) / "envctl"
