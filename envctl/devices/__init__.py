"""Device families, one module each; `family(kind)` picks one."""

from __future__ import annotations

from envctl.devices.base import Family
from envctl.devices.cpu import CPU
from envctl.devices.cuda import CUDA
from envctl.devices.mlu import MLU
from envctl.devices.npu import NPU

FAMILIES: dict[str, Family] = {f.kind: f for f in (MLU(), NPU(), CUDA(), CPU())}


def family(kind: str) -> Family:
    return FAMILIES[kind]
