"""No accelerator: nothing to pass through, no driver to check."""

from __future__ import annotations

from envctl.devices.base import DeviceView, Snapshot, DriverInfo, Selection
from envctl.hosts.base import Host


class CPU:
    kind = "cpu"
    label = "CPU"
    visibility_variable = None
    mount_candidates = ()

    def discover(self, view: Snapshot) -> list[int]:
        return []

    def select(self, view: DeviceView, cards: list[int], runtime: str | None) -> Selection:
        return Selection(self.kind, ())

    def probe_driver(self, host: Host) -> DriverInfo:
        return DriverInfo(None, "", None)
