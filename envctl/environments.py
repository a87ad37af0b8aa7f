"""Finding the environments (containers) envctl created, by name, manifest or alone."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from envctl.cards import CardsError, parse_indices
from envctl.containers import LABEL_CARDS, LABEL_FILE, LABEL_HASH, LABEL_MANIFEST, LABEL_VARIANT, LABEL_VARS
from envctl.errors import EnvctlError, EXIT_NOT_FOUND
from envctl.paths import WORKSPACE_TARGET


@dataclass(frozen=True)
class Environment:
    container: object  # docker.models.containers.Container
    name: str
    manifest: str
    variant: str | None
    manifest_file: str | None
    cards: tuple[int, ...]
    config_hash: str | None
    status: str
    vars: dict = None  # the --var values it was brought up with (label io.envctl.vars), name → text

    def __post_init__(self):
        if self.vars is None:
            object.__setattr__(self, "vars", {})

    @property
    def reference(self) -> str:
        return f"{self.manifest}:{self.variant}" if self.variant else self.manifest

    @property
    def workspace(self) -> str | None:
        for mount in self.container.attrs.get("Mounts", []):
            if mount.get("Destination") == WORKSPACE_TARGET:
                return mount.get("Source")
        return None


def _describe(container) -> Environment:
    labels = container.labels
    try:
        cards = parse_indices(labels[LABEL_CARDS]) if labels.get(LABEL_CARDS) else ()
    except CardsError as problem:
        # Labels are fixed when a container is created, and envctl writes them with cards_text.
        raise EnvctlError(f"container {container.name}: label {LABEL_CARDS} {problem}",
                          hint="envctl did not write that label; remove the container (docker rm) "
                               "and run envctl up again") from None
    return Environment(container, container.name, labels.get(LABEL_MANIFEST, "?"), labels.get(LABEL_VARIANT),
                       labels.get(LABEL_FILE), cards, labels.get(LABEL_HASH), container.status, _vars(container))


def _vars(container) -> dict:
    """The --var values of its label; a label envctl did not write is an error, as for cards."""
    from envctl.var_label import parse_vars_label

    values = parse_vars_label(container.labels.get(LABEL_VARS))
    if values is None:
        raise EnvctlError(f"container {container.name}: label {LABEL_VARS} is not a JSON object of text values",
                          hint="envctl did not write that label; remove the container (docker rm) and run envctl up again")
    return values


def all_environments(client) -> list[Environment]:
    from envctl.lifecycle import environments  # docker-py's: exec chooses from a listing without it

    return sorted((_describe(c) for c in environments(client)), key=lambda e: e.name)


@dataclass(frozen=True)
class _Listed:
    """A container as the engine's list summary gives it (ContainerList: Names, Id, State,
    Labels, Mounts): what choosing needs, without inspecting every container. `attrs` holds
    the summary's Mounts (Type, Source, Destination, RW, as ContainerInspect's), where
    Environment.workspace reads them."""

    id: str
    name: str
    status: str
    labels: dict
    attrs: dict = field(default_factory=dict)


def _listed(client) -> list[Environment]:
    """Every environment, from one list request; their `container` is a _Listed."""
    return _summarized(client.api.containers(all=True, filters={"label": LABEL_MANIFEST}))


def _summarized(summaries: list[dict]) -> list[Environment]:
    out = []
    for summary in summaries:
        names = [n.lstrip("/") for n in summary.get("Names") or () if n.count("/") == 1]  # not a link's alias
        listed = _Listed(summary["Id"], names[0] if names else summary["Id"][:12], summary.get("State") or "unknown",
                         dict(summary.get("Labels") or {}), {"Mounts": list(summary.get("Mounts") or ())})
        out.append(_describe(listed))
    return sorted(out, key=lambda e: e.name)


def _not_running(environments: list[Environment]) -> str:
    """" (NAME: STATUS, ...)" for those of `environments` that do not run (the engine's
    State.Status: paused, exited, created, restarting, dead), or ""."""
    stopped = [f"{e.name}: {e.status}" for e in environments if e.status != "running"]
    return f" ({', '.join(stopped)})" if stopped else ""


def choose(client, wanted: str | None, running_only: bool = True, inspect: bool = True) -> Environment:
    """The environment named `wanted` (container name, manifest or manifest:variant), or the
    only one there is. Raises a clear error listing the candidates otherwise. Two requests
    whatever the number of environments: the list, then the chosen container's inspection
    (its `container` a docker-py Container). `inspect=False`: the list alone, one request; its
    `container` is then the list's summary (id, name, status, labels, and attrs["Mounts"]: what
    `exec` reads), as it was when listed."""
    chosen = _choose(_listed(client), wanted, running_only)
    return _describe(client.containers.get(chosen.container.id)) if inspect else chosen


def choose_listed(summaries: list[dict], wanted: str | None, running_only: bool = True) -> Environment:
    """As choose(..., inspect=False), from the engine's answer to `GET /containers/json?all=1`
    filtered on the label LABEL_MANIFEST (ContainerList summaries), read by the caller. Raises
    as choose does."""
    return _choose(_summarized(summaries), wanted, running_only)


def _named(environment: Environment, wanted: str) -> bool:
    """Whether `wanted` names the environment: its container name, manifest name, NAME:VARIANT,
    or the path of the manifest file it was brought up from (or of that file's directory), as
    everywhere a command takes NAME (the file's path on this machine: the io.envctl.manifest-file label)."""
    if wanted in (environment.name, environment.manifest, environment.reference):
        return True
    if not environment.manifest_file:
        return False
    from envctl.manifest.discovery import MANIFEST_FILE, looks_like_path

    if not looks_like_path(wanted):
        return False
    path = os.path.expanduser(wanted)
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST_FILE)
    return os.path.realpath(path) == os.path.realpath(environment.manifest_file)


def _choose(candidates: list[Environment], wanted: str | None, running_only: bool) -> Environment:
    every = candidates
    if running_only:
        candidates = [e for e in candidates if e.status == "running"]
    listing = ", ".join(e.name for e in candidates) or "none"
    if wanted is None:
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise EnvctlError(("no environment is running" if running_only else "no environment is up") + _not_running(every),
                              hint="start one with `envctl up NAME`", exit_code=EXIT_NOT_FOUND)
        raise EnvctlError(f"{len(candidates)} environments are up ({listing}): choose one with --env NAME", exit_code=EXIT_NOT_FOUND)
    matches = [e for e in candidates if _named(e, wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        there = [e for e in every if _named(e, wanted)]
        if there:  # paused, stopped, still being created: up brings it back (unpaused, started)
            raise EnvctlError(f"environment '{wanted}' is not running{_not_running(there)}; up: {listing}",
                              hint=f"`envctl up {there[0].reference}` makes it run again" if len(there) == 1
                              else "`envctl up NAME` makes one run again", exit_code=EXIT_NOT_FOUND)
        raise EnvctlError(f"no environment '{wanted}' is up; up: {listing}", exit_code=EXIT_NOT_FOUND)
    raise EnvctlError(f"'{wanted}' names {len(matches)} environments ({', '.join(e.name for e in matches)}): give the container name",
                      exit_code=EXIT_NOT_FOUND)
