"""`npu-smi info`'s tables (Huawei Ascend), as drivers 23.0 to 25.x print them: two lines per chip,
then the process table. Layouts (tests/fixtures/vendor/npu-smi/SOURCES.md):

    | NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
    | Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
    | 0     910B2               | OK            | 96.4        37                0    / 0             |
    | 0                         | 0000:C1:00.0  | 0           0    / 0          3397 / 65536         |

Health is OK, Warning, Alarm or Critical, as printed (envctl/devices/usage.CardReading.unhealthy).
A3 servers print `Chip  Phy-ID` and two chips under each NPU ID (one board); 310P3 cards print
`Chip  Device` and no HBM column. The device index (the N of /dev/davinciN) is the Phy-ID or
Device column where there is one, else the NPU ID (one chip per NPU). 25.x prints `31877/ 65536`
(no space before the slash) and the power as `-` or `NA` for a second chip.

The process table: `| NPU  Chip | Process id | Process name | Process memory(MB) |` and, from
25.x, `| Process id in container |`; "No running processes found in NPU N" when none.
"""

from __future__ import annotations

import re

from envctl.devices.usage import CardProcess, CardReading

_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$")
_PAIR = re.compile(r"([0-9]+)\s*/\s*([0-9]+)")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _int(text: str) -> int | None:
    return int(text) if text.isdecimal() else None


def _float_int(text: str) -> int | None:
    try:
        return round(float(text))
    except (ValueError, OverflowError):  # "NA", "-", and "nan" / "inf", which float() reads but round() refuses
        return None


def parse(stdout: str) -> tuple[list[CardReading], list[CardProcess]]:
    """npu-smi info's output → (chips in printed order, processes). Rows of an unknown shape
    are skipped; an output with no chip rows gives ([], [])."""
    cards: list[CardReading] = []
    raw_processes: list[tuple[int, int, int, str, int | None, int | None]] = []
    pending: tuple[int, str, int | None, str] | None = None  # NPU ID, name, temperature, health of the first line
    in_processes = False
    chips: dict[tuple[int, int], int] = {}  # (NPU ID, chip) → device index, for the process table
    for line in stdout.splitlines():
        if not line.startswith("|"):
            continue
        cells = _cells(line)
        if cells and cells[0].startswith("NPU") and len(cells) > 1 and cells[1].startswith("Process id"):
            in_processes = True
            continue
        if in_processes:
            head = cells[0].split()
            if len(cells) >= 4 and len(head) == 2 and all(w.isdecimal() for w in head) and cells[1].isdecimal():
                extra = _int(cells[4]) if len(cells) > 4 else None
                raw_processes.append((int(head[0]), int(head[1]), int(cells[1]), cells[2], _int(cells[3]), extra))
            continue
        if len(cells) < 3:
            continue
        head = cells[0].split()
        if pending is None:
            # the first line of a chip: NPU ID and name | health | power, temperature, hugepages
            if len(head) == 2 and head[0].isdecimal() and not _BUS_ID.match(cells[1]):
                words = cells[2].split()
                temperature = _int(words[1]) if len(words) > 1 else None
                pending = (int(head[0]), head[1], temperature, cells[1])
            continue
        if _BUS_ID.match(cells[1]) and head and head[0].isdecimal():
            npu, name, temperature, health = pending
            pairs = _PAIR.findall(cells[2])
            memory = pairs[1] if len(pairs) > 1 and int(pairs[1][1]) > 0 else (pairs[0] if pairs else None)
            words = cells[2].split()
            util = _float_int(words[0]) if words else None
            index = int(head[1]) if len(head) > 1 and head[1].isdecimal() else npu
            cards.append(CardReading(index, name, cells[1], int(memory[0]) if memory else None,
                                     int(memory[1]) if memory else None, util, temperature, npu, health or None))
            pending = None
            chips[(npu, int(head[0]))] = index
        else:
            pending = None
    processes = [CardProcess(chips.get((npu, chip), npu), pid, name, memory, in_container)
                 for npu, chip, pid, name, memory, in_container in raw_processes]
    return cards, processes
