"""Huawei Ascend NPU (910): davinci nodes, driver mounts, visibility variables, driver probe."""

from __future__ import annotations

import re

from envctl.devices.base import DeviceView, Snapshot, DriverInfo, Selection, logical, mount_if_present, node, numbered_nodes
from envctl.hosts.base import Host

VERSION_INFO = "/usr/local/Ascend/driver/version.info"
MANAGER_NODES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
# Shared nodes passed when the host has them, as MindCluster's device plugin and CDI generator
# do (cdi/devnode.go GenerateSharedNodes: dvpp_cmdlist on every type but A5): DVPP image and
# video processing (Atlas 800I A2, 310P) opens /dev/dvpp_cmdlist and fails without it.
SHARED_NODES_IF_PRESENT = ("/dev/dvpp_cmdlist",)
# Host paths passed read-only to the container when they exist (absent ones are left out), as
# the Ascend Docker Runtime mounts them: its base.list (driver/lib64, driver/include,
# /usr/local/dcmi, /usr/local/bin/npu-smi) and its hook's paths (driver/tools, where hccn_tool
# lives; /usr/local/sbin/npu-smi, where standard driver installs put npu-smi), plus what
# MindCluster's runtime mounts for HCCL when present (driver/topo: topology files HCCL reads at
# communicator init on newer cards, which fails without them) and the files the tools read
# (version.info, /etc/ascend_install.info; /etc/hccn.conf, hccn_tool's network settings).
# Sources: Ascend/ascend-docker-runtime build/scripts/base.list and cli/src/basic.h;
# Ascend/mind-cluster component/ascend-docker-runtime (TopologyItems: /etc/hccl_rootinfo.json,
# driver/topo). /etc/hccl_rootinfo.json is left out: a stale host copy breaks HCCL's rootinfo
# detection on A5 cards (GPUStack's CDI generator drops it for that reason).
DRIVER_MOUNTS = (
    "/usr/local/dcmi",
    "/usr/local/bin/npu-smi",
    "/usr/local/sbin/npu-smi",
    "/usr/local/Ascend/driver/lib64",
    "/usr/local/Ascend/driver/include",
    "/usr/local/Ascend/driver/tools",
    "/usr/local/Ascend/driver/topo",
    "/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info",
    "/etc/hccn.conf",
)
_PACKAGE_VERSION = re.compile(r"^\s*package_version\s*=\s*v?(\S+)", re.M)
_VERSION = re.compile(r"^\s*Version\s*=\s*v?(\S+)", re.M)
# npu-smi info's header: "| npu-smi 23.0.rc2                 Version: 23.0.rc2               |"
_NPU_SMI_HEADER = re.compile(r"Version:\s*v?([0-9][0-9A-Za-z.\-]*)")
SHOWN_LINES = 4  # of npu-smi's output, in the message when it gave no version


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
        nodes += [n for n in (node(view, path) for path in SHARED_NODES_IF_PRESENT) if n is not None]
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
            # A failing npu-smi may say why on stdout ("dcmi module initialize failed. ret is
            # -8005" after a driver upgrade without a reboot), so both streams are shown.
            lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
            shown = " / ".join(lines[:SHOWN_LINES])[:300] or "no output"
            if result.returncode != 0:
                return DriverInfo(None, tool, f"npu-smi info exited {result.returncode}: {shown}")
            return DriverInfo(None, tool, f"npu-smi info printed no 'Version:' header; its first lines: {shown}")
        return DriverInfo(None, path, "no version.info and no npu-smi")
