"""Huawei Ascend NPU (910): davinci nodes, driver mounts, visibility variables, driver probe."""

from __future__ import annotations

import re

from envctl.devices.base import DeviceView, Snapshot, DriverInfo, Selection, logical, mount_if_present, node, numbered_nodes
from envctl.hosts.base import Host

VERSION_INFO = "/usr/local/Ascend/driver/version.info"
MANAGER_NODES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
DRIVER_MOUNTS = (
    "/usr/local/dcmi",
    "/usr/local/bin/npu-smi",
    "/usr/local/Ascend/driver/lib64",
    "/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info",
)
_PACKAGE_VERSION = re.compile(r"^\s*package_version\s*=\s*v?(\S+)", re.M)
_VERSION = re.compile(r"^\s*Version\s*=\s*v?(\S+)", re.M)
# npu-smi info's header: "| npu-smi 23.0.rc2                 Version: 23.0.rc2               |"
_NPU_SMI_HEADER = re.compile(r"Version:\s*v?([0-9][0-9A-Za-z.\-]*)")


class NPU:
    kind = "npu"
    label = "Ascend NPU"
    visibility_variable = "ASCEND_RT_VISIBLE_DEVICES"
    mount_candidates = DRIVER_MOUNTS

    def discover(self, view: Snapshot) -> list[int]:
        return numbered_nodes(view, "davinci")

    def select(self, view: DeviceView, cards: list[int], runtime: str | None) -> Selection:
        env = {self.visibility_variable: logical(cards)}
        if runtime == "ascend":
            # The Ascend Docker Runtime adds nodes and driver mounts itself from this variable
            # (host indices). An empty value silently mounts no NPU, so it is never empty.
            if not cards:
                return Selection(self.kind, (), env=env, problems=("the Ascend runtime needs at least one card",))
            env["ASCEND_VISIBLE_DEVICES"] = ",".join(map(str, cards))
            return Selection(self.kind, tuple(cards), env=env)
        problems = []
        nodes = [n for n in (node(view, f"/dev/davinci{card}") for card in cards) if n is not None]
        for path in MANAGER_NODES:
            found = node(view, path)
            if found is None:
                problems.append(f"{view.under_root(path)} is missing: is the Ascend driver installed?")
            else:
                nodes.append(found)
        mounts = [m for m in (mount_if_present(view, p) for p in DRIVER_MOUNTS) if m is not None]
        return Selection(self.kind, tuple(cards), tuple(nodes), tuple(mounts), env, tuple(problems))

    def probe_driver(self, host: Host) -> DriverInfo:
        path = host.under_root(VERSION_INFO)
        text = host.read_text(path)
        if text is not None:
            match = _PACKAGE_VERSION.search(text) or _VERSION.search(text)
            if match:
                return DriverInfo(match.group(1), path)
        tool = host.which("npu-smi")
        if tool:
            result = host.run([tool, "info"])
            match = _NPU_SMI_HEADER.search(result.stdout)
            if result.returncode == 0 and match:
                return DriverInfo(match.group(1), f"{tool} info (header)")
            return DriverInfo(None, tool, f"npu-smi exited {result.returncode}: {result.stderr.strip()[:200]}")
        return DriverInfo(None, path, "no version.info and no npu-smi")
