"""What the vendor tool says about each card now: model, bus ID, memory, utilisation,
temperature, and the processes using it (`cnmon` on Cambricon hosts, `npu-smi info` on Ascend
hosts). The tables' layouts are parsed in envctl/devices/cnmon_table.py and npu_smi_table.py;
recorded outputs of several versions are in tests/fixtures/vendor/ (see SOURCES.md there).

Observing only reads: the tool is run once, with no arguments that change anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from envctl.hosts.base import Host

TOOLS = {"mlu": ("cnmon",), "npu": ("npu-smi", "info")}  # what is run, per device family


@dataclass(frozen=True)
class CardReading:
    """One card as the vendor tool lists it. Memory is in the tool's unit (`unit` of the
    reading: cnmon prints MiB, npu-smi MB); a field the tool leaves out or masks is None."""

    index: int  # the host index: N of /dev/cambricon_devN or /dev/davinciN
    model: str | None = None
    bus_id: str | None = None  # PCI domain:bus:device.function, as printed
    memory_used: int | None = None
    memory_total: int | None = None
    utilization_percent: int | None = None  # cnmon's Util, npu-smi's AICore(%)
    temperature_c: int | None = None
    board: int | None = None  # npu-smi's NPU ID: cards (chips) with the same one are one board
    health: str | None = None  # npu-smi's Health as printed (OK, Warning, Alarm, Critical); None: not given

    @property
    def unhealthy(self) -> bool:
        """The tool marks the card anything but OK. npu-smi's Health reads OK, Warning (minor
        alarm), Alarm (major), Critical (urgent) or UNKNOWN (absent or not started): Huawei's
        npu-smi reference, `npu-smi info -t health`; a public parser of the table quotes
        `| 5  910B3  | Alarm  |` (tests/fixtures/vendor/npu-smi/SOURCES.md). vllm-ascend's
        worker health check (vllm-project/vllm-ascend PR #6681) takes every value but OK as not
        healthy, and so does envctl. cnmon's table has no health column
        (its Ecc-Error column counts errors, it does not judge): an MLU card's health is None."""
        return self.health is not None and self.health.upper() != "OK"


@dataclass(frozen=True)
class CardProcess:
    """A process the vendor tool lists on a card (host PID; npu-smi 25.x adds the PID inside
    its container)."""

    card: int  # host index, as CardReading.index
    pid: int
    name: str  # cnmon's Command Line, npu-smi's Process name ("" when the tool leaves it blank)
    memory: int | None = None  # in the reading's unit
    pid_in_container: int | None = None


@dataclass(frozen=True)
class VendorReading:
    tool: str  # the command as run, e.g. "/usr/bin/cnmon"
    unit: str  # of memory: "MiB" (cnmon) or "MB" (npu-smi)
    cards: tuple[CardReading, ...] = ()
    processes: tuple[CardProcess, ...] = ()
    problem: str | None = None  # why nothing (or not everything) could be read

    def card(self, index: int) -> CardReading | None:
        return next((c for c in self.cards if c.index == index), None)

    def processes_on(self, index: int) -> tuple[CardProcess, ...]:
        return tuple(p for p in self.processes if p.card == index)

    def unhealthy(self) -> dict[int, str]:
        """Host index → the health the tool printed, for every card it marks anything but OK."""
        return {c.index: c.health for c in self.cards if c.unhealthy}

    def boards(self) -> tuple[tuple[int, ...], ...]:
        """Groups of host indices that are one board (several chips under one NPU ID), in
        index order; single-chip boards are left out. Only npu-smi says which chips share a
        board: cnmon's table prints one row per MLU device and nothing that ties the two chips
        of an MLU370-X8 together (see envctl/card_choice.topology)."""
        groups: dict[int, list[int]] = {}
        for card in self.cards:
            if card.board is not None:
                groups.setdefault(card.board, []).append(card.index)
        return tuple(tuple(sorted(g)) for _, g in sorted(groups.items()) if len(g) > 1)


def read(kind: str, host: Host) -> VendorReading | None:
    """Run the family's tool on `host` and parse its tables; None for a family without one
    (cpu, cuda). A missing tool, a failing run or an unknown layout is a reading with
    `problem` set, never an exception."""
    if kind not in TOOLS:
        return None
    name, *args = TOOLS[kind]
    unit = "MiB" if kind == "mlu" else "MB"
    path = host.which(name)
    if path is None:
        return VendorReading(name, unit, problem=f"{name} not found under {host.root}")
    result = host.run([path, *args])
    command = " ".join([path, *args])
    if result.returncode != 0:
        # npu-smi says why on stdout too ("dcmi model initialized failed, because the device is used. ret is -8020")
        said = " / ".join(line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip())
        return VendorReading(command, unit, problem=f"{name} exited {result.returncode}: {said[:300] or 'no output'}")
    if kind == "mlu":
        from envctl.devices.cnmon_table import parse
    else:
        from envctl.devices.npu_smi_table import parse
    cards, processes = parse(result.stdout)
    problem = None if cards else f"{command} printed no card rows in a known layout"
    return VendorReading(command, unit, tuple(cards), tuple(processes), problem)
