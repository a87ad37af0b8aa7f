"""Cambricon MLU (MLU370): device nodes, cnmon mount, MLU_VISIBLE_DEVICES, driver probe."""

from __future__ import annotations

import re

from envctl.devices.base import DeviceView, Snapshot, DriverInfo, Selection, mount_if_present, node, numbered_nodes, logical
from envctl.hosts.base import Host

DRIVER_INFO_GLOB = "/proc/driver/cambricon/mlus/*/information"
_DRIVER_LINE = re.compile(r"^\s*Driver Version\s*:\s*v?([0-9][0-9A-Za-z.\-]*)", re.M)
# cnmon's header: "| CNMON v5.10.22                                Driver v5.10.22 |"
_CNMON_HEADER = re.compile(r"Driver\s+v?([0-9][0-9A-Za-z.\-]*)")


class MLU:
    kind = "mlu"
    label = "Cambricon MLU"
    visibility_variable = "MLU_VISIBLE_DEVICES"
    mount_candidates = ("/usr/bin/cnmon",)

    def discover(self, view: Snapshot) -> list[int]:
        return numbered_nodes(view, "cambricon_dev")

    def select(self, view: DeviceView, cards: list[int], runtime: str | None) -> Selection:
        problems = []
        nodes = []
        ctl = node(view, "/dev/cambricon_ctl")
        if ctl is None:
            problems.append(f"{view.under_root('/dev/cambricon_ctl')} is missing: is the Cambricon driver loaded?")
        else:
            nodes.append(ctl)
        for card in cards:
            for name in (f"cambricon_dev{card}", f"cambricon_ipcm{card}", f"commu{card}"):
                found = node(view, f"/dev/{name}")
                if found is not None:
                    nodes.append(found)
        mounts = [m for m in [mount_if_present(view, "/usr/bin/cnmon")] if m is not None]
        env = {self.visibility_variable: logical(cards)}
        return Selection(self.kind, tuple(cards), tuple(nodes), tuple(mounts), env, tuple(problems))

    def probe_driver(self, host: Host) -> DriverInfo:
        for path in host.glob(host.under_root(DRIVER_INFO_GLOB)):
            match = _DRIVER_LINE.search(host.read_text(path) or "")
            if match:
                return DriverInfo(match.group(1), path)
        cnmon = host.which("cnmon")
        if cnmon:
            result = host.run([cnmon])
            match = _CNMON_HEADER.search(result.stdout)
            if result.returncode == 0 and match:
                return DriverInfo(match.group(1), f"{cnmon} (header)")
            return DriverInfo(None, cnmon, f"cnmon exited {result.returncode}: {result.stderr.strip()[:200]}")
        return DriverInfo(None, host.under_root(DRIVER_INFO_GLOB), "no driver information file and no cnmon")
