"""Cambricon MLU (MLU370): device nodes, cnmon mount, MLU_VISIBLE_DEVICES, driver probe
(the /proc information file, then cnmon's table as 4.x, 5.x and 6.x drivers print it)."""

from __future__ import annotations

import re

from envctl.devices.base import DeviceView, Snapshot, DriverInfo, Selection, mount_if_present, node, numbered_nodes, logical
from envctl.hosts.base import Host

DRIVER_INFO_GLOB = "/proc/driver/cambricon/mlus/*/information"
_DRIVER_LINE = re.compile(r"^\s*Driver Version\s*:\s*v?([0-9][0-9A-Za-z.\-]*)", re.M)
_VERSION = r"v?([0-9][0-9A-Za-z.\-]*)"
# 5.x and 6.x drivers: "| CNMON v5.10.13                                    Driver v5.10.13 |". The
# cnmon version is not the driver's ("CNMON v6.5.48" with "Driver v6.2.29" on MLU590 hosts), so
# only the Driver field counts.
_CNMON_HEADER = re.compile(r"\bDriver\s+" + _VERSION)
# 4.x drivers print only "| CNMON v4.20.11 |" in the header; each card's row carries the driver
# in the column headed "Inited        Driver". Layouts: tests/fixtures/vendor/cnmon/SOURCES.md.
_CELL_VERSION = re.compile(r"\bv([0-9][0-9A-Za-z.\-]*)\s*$")
_CARD_ROW = re.compile(r"^\|\s*[0-9]+\s")
SHOWN_LINES = 6  # of cnmon's output, in the message when no layout matched
CONTROL_NODE = "/dev/cambricon_ctl"  # the driver's control node, needed with any card


def card_nodes(card: int) -> tuple[str, ...]:
    """A card's device nodes, the card's own first (cambricon_dev<N>), then cambricon_ipcm<N> and
    commu<N>, which are passed where the host has them."""
    return (f"/dev/cambricon_dev{card}", f"/dev/cambricon_ipcm{card}", f"/dev/commu{card}")


def driver_from_cnmon(stdout: str) -> tuple[str | None, str]:
    """The driver version in `cnmon`'s output and where it was found ("header" or "Driver
    column"); (None, reason) when neither layout is there."""
    for line in stdout.splitlines()[:5]:
        match = _CNMON_HEADER.search(line)
        if match:
            return match.group(1), "header"
    column = None
    found = []
    for line in stdout.splitlines():
        cells = line.strip().strip("|").split("|")
        if column is None:
            names = [cell.split() for cell in cells]
            column = next((i for i, words in enumerate(names) if words and words[-1] == "Driver"), None)
        elif _CARD_ROW.match(line.strip()) and column < len(cells):
            match = _CELL_VERSION.search(cells[column])
            if match:
                found.append(match.group(1))
    if found and len(set(found)) == 1:
        return found[0], "Driver column"
    if found:
        return None, f"cnmon shows different driver versions per card: {', '.join(sorted(set(found)))}"
    shown = [line for line in stdout.splitlines() if line.strip()][:SHOWN_LINES]
    lines = " / ".join(line.strip() for line in shown) or "nothing"
    return None, (f"cnmon printed no driver version in a known layout (a 'Driver vX' header or a Driver "
                  f"column); its first lines: {lines}")


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
        ctl = node(view, CONTROL_NODE)
        if ctl is None:
            problems.append(f"{view.under_root(CONTROL_NODE)} is missing: is the Cambricon driver loaded?")
        else:
            nodes.append(ctl)
        for card in cards:
            for path in card_nodes(card):
                found = node(view, path)
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
            if result.returncode != 0:
                why = result.stderr.strip()[:200] or result.stdout.strip()[:200] or "no output"
                return DriverInfo(None, cnmon, f"cnmon exited {result.returncode}: {why}")
            version, where = driver_from_cnmon(result.stdout)
            if version:
                return DriverInfo(version, f"{cnmon} ({where})")
            return DriverInfo(None, cnmon, where)
        return DriverInfo(None, host.under_root(DRIVER_INFO_GLOB), "no driver information file and no cnmon")
