"""`cnmon`'s tables (Cambricon MLU), as 4.x, 5.x and 6.x drivers print them: two lines per card,
then a "Processes:" table. Layouts (tests/fixtures/vendor/cnmon/SOURCES.md):

    | Card  VF  Name       Firmware |               Bus-Id | Util        Ecc-Error |    5.x/6.x
    | Fan   Temp      Pwr:Usage/Cap |         Memory-Usage | SR-IOV   Compute-Mode |
    | 0     /   MLU370-X8    v1.1.6 |         0000:39:00.0 | 0%                N/A |
    |  0%   32C        106 W/ 250 W |     0 MiB/ 23374 MiB | N/A           Default |

4.x prints `Inited        Driver` (`On  v4.20.11`) where the bus ID is. Published outputs mask
numbers they do not want to show (`0 MiB/ xxxxx MiB`): such a field is read as unknown.

The process table's header is `Card  MI  PID  Command Line  MLU Memory Usage` (5.x; 4.x: VF for
MI). Each row holds the card, the MI/VF column, the host PID, the command line and the memory
("1024 MiB"); the command line may hold spaces, so the row is read from both ends.
"""

from __future__ import annotations

import re

from envctl.devices.usage import CardProcess, CardReading

_FIRST_LINE = re.compile(r"^\|\s*([0-9]+)\s+(\S+)\s+(\S+)(?:\s+(\S+))?\s*\|([^|]*)\|([^|]*)\|")
_SECOND_LINE = re.compile(r"^\|\s*(\S+)\s+(\S+)\s+.*\|([^|]*)\|([^|]*)\|")
_BUS_ID = re.compile(r"\b([0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])\b")
_USED_TOTAL = re.compile(r"(\S+)\s*MiB\s*/\s*(\S+)\s*MiB")
_PERCENT = re.compile(r"^([0-9]+)%$")
_CELSIUS = re.compile(r"^(-?[0-9]+)C$")
_PROCESS = re.compile(r"^\|\s*([0-9]+)\s+(\S+)\s+([0-9]+)\s+(.*?)\s+([0-9]+)\s*MiB\s*\|$")


def _number(text: str, pattern: re.Pattern | None = None) -> int | None:
    text = text.strip()
    if pattern is not None:
        match = pattern.match(text)
        return int(match.group(1)) if match else None
    return int(text) if text.isdecimal() else None


def parse(stdout: str) -> tuple[list[CardReading], list[CardProcess]]:
    """cnmon's output → (cards in printed order, processes). Rows of an unknown shape are
    skipped; an output with no card rows gives ([], [])."""
    cards: list[CardReading] = []
    processes: list[CardProcess] = []
    lines = [line.rstrip() for line in stdout.splitlines()]
    in_processes = False
    pending: dict | None = None  # the first line of a card, waiting for its second
    for line in lines:
        if "Processes:" in line:
            in_processes = True
            continue
        if in_processes:
            match = _PROCESS.match(line.strip())
            if match:
                processes.append(CardProcess(int(match.group(1)), int(match.group(3)), match.group(4).strip(),
                                             int(match.group(5))))
            continue
        if pending is not None:
            second = _SECOND_LINE.match(line)
            if second:
                words = line.strip("|").split("|")[0].split()
                temperature = next((_number(w, _CELSIUS) for w in words if _CELSIUS.match(w)), None)
                memory = _USED_TOTAL.search(second.group(3))
                used, total = (_number(memory.group(1)), _number(memory.group(2))) if memory else (None, None)
                cards.append(CardReading(pending["index"], pending["model"], pending["bus_id"], used, total,
                                         pending["util"], temperature))
                pending = None
                continue
        first = _FIRST_LINE.match(line)
        if first and first.group(4) is not None:
            bus = _BUS_ID.search(first.group(5))
            util_words = first.group(6).split()
            pending = {"index": int(first.group(1)), "model": first.group(3), "bus_id": bus.group(1) if bus else None,
                       "util": _number(util_words[0], _PERCENT) if util_words else None}
    return cards, processes
