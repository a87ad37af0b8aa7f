"""What every device family provides: discovery, selection of nodes and mounts, the driver probe."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from envctl.hosts.base import Host


@dataclass(frozen=True)
class DeviceNode:
    host_path: str  # real path on the host (below the host root when simulated)
    container_path: str


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = True

    def spec(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


@dataclass(frozen=True)
class DriverInfo:
    version: str | None  # without a leading "v"; None when no probe found it
    source: str  # the file read or the command run
    problem: str | None = None  # why it could not be read


@dataclass(frozen=True)
class Selection:
    """The cards chosen on a host and how a container gets them."""

    kind: str
    cards: tuple[int, ...]  # host card indices
    nodes: tuple[DeviceNode, ...] = ()
    mounts: tuple[Mount, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # reasons `up` cannot proceed with these cards
    why: str = ""  # why these cards (envctl/card_choice.py): free ones, as asked, shared, ...


class DeviceView(Protocol):
    """The part of a host that device selection looks at (a live Host or a Snapshot of one)."""

    root: str

    def under_root(self, path: str) -> str: ...

    def is_char_device(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...


@dataclass(frozen=True)
class Snapshot:
    """What observation recorded of a host's devices, so that planning reads no host at all."""

    root: str
    char_devices: frozenset[str]  # real paths of the character devices in <root>/dev
    existing: frozenset[str]  # real paths, among the family's mount candidates, that exist

    def under_root(self, path: str) -> str:
        return path if self.root == "/" else self.root.rstrip("/") + "/" + path.lstrip("/")

    def is_char_device(self, path: str) -> bool:
        return path in self.char_devices

    def exists(self, path: str) -> bool:
        return path in self.existing or path in self.char_devices


def snapshot(host: Host, family: "Family") -> Snapshot:
    devices = frozenset(p for p in host.glob(host.under_root("/dev/*")) if host.is_char_device(p))
    existing = frozenset(
        host.under_root(p) for p in family.mount_candidates if host.exists(host.under_root(p))
    )
    return Snapshot(host.root, devices, existing)


class Family(Protocol):
    kind: str
    label: str  # "Cambricon MLU"
    visibility_variable: str | None  # the in-process selector, renumbered from 0 in the container
    mount_candidates: tuple[str, ...]  # host files/dirs passed read-only when present

    def discover(self, view: DeviceView) -> list[int]:
        """Host indices of the cards present."""

    def select(self, view: DeviceView, cards: list[int], runtime: str | None) -> Selection: ...

    def probe_driver(self, host: Host) -> DriverInfo: ...


def numbered_nodes(view: Snapshot, prefix: str) -> list[int]:
    """Indices N of character devices <root>/dev/<prefix>N."""
    pattern = re.compile(re.escape(view.under_root(f"/dev/{prefix}")) + r"([0-9]+)$")
    return sorted(int(m.group(1)) for m in map(pattern.match, view.char_devices) if m)


def node(view: DeviceView, path: str) -> DeviceNode | None:
    real = view.under_root(path)
    return DeviceNode(real, path) if view.is_char_device(real) else None


def mount_if_present(view: DeviceView, path: str) -> Mount | None:
    real = view.under_root(path)
    return Mount(real, path, read_only=True) if view.exists(real) else None


def logical(cards: list[int]) -> str:
    """Inside the container only the passed cards exist, and runtimes number them from 0."""
    return ",".join(str(i) for i in range(len(cards)))
