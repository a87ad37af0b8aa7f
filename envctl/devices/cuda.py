"""NVIDIA CUDA: device nodes, CUDA_VISIBLE_DEVICES, driver probe (for mixed labs)."""

from __future__ import annotations

import re

from envctl.devices.base import DeviceView, Snapshot, DriverInfo, Selection, logical, node, numbered_nodes
from envctl.hosts.base import Host

DRIVER_VERSION_FILE = "/proc/driver/nvidia/version"
_NVRM = re.compile(r"Kernel Module\s+([0-9][0-9.]*)")
GLOBAL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")


class CUDA:
    kind = "cuda"
    label = "NVIDIA GPU"
    visibility_variable = "CUDA_VISIBLE_DEVICES"
    mount_candidates = ()

    def discover(self, view: Snapshot) -> list[int]:
        return numbered_nodes(view, "nvidia")

    def select(self, view: DeviceView, cards: list[int], runtime: str | None) -> Selection:
        env = {self.visibility_variable: logical(cards)}
        if runtime == "nvidia":
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(map(str, cards))
            return Selection(self.kind, tuple(cards), env=env)
        nodes = [n for n in (node(view, f"/dev/nvidia{card}") for card in cards) if n is not None]
        nodes += [n for n in (node(view, p) for p in GLOBAL_NODES) if n is not None]
        return Selection(self.kind, tuple(cards), tuple(nodes), (), env)

    def probe_driver(self, host: Host) -> DriverInfo:
        path = host.under_root(DRIVER_VERSION_FILE)
        match = _NVRM.search(host.read_text(path) or "")
        if match:
            return DriverInfo(match.group(1), path)
        tool = host.which("nvidia-smi")
        if tool:
            result = host.run([tool, "--query-gpu=driver_version", "--format=csv,noheader"])
            version = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
            if result.returncode == 0 and version:
                return DriverInfo(version, f"{tool} --query-gpu=driver_version")
            return DriverInfo(None, tool, f"nvidia-smi exited {result.returncode}")
        return DriverInfo(None, path, "no driver version file and no nvidia-smi")
