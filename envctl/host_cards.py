"""`envctl cards`: every accelerator card of a host, what the vendor tool says about it now, and
who holds it (envctl environments with their user, other containers with its device node,
privileged containers, the processes the tool lists). Reading only: device nodes below the host
root, the vendor tool's tables (envctl/devices/usage.py), the engine's containers
(envctl/card_holders.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envctl.card_holders import Holder, node_path_for, read_holders, with_processes
from envctl.devices import FAMILIES
from envctl.devices.base import snapshot
from envctl.devices.usage import VendorReading, read


@dataclass(frozen=True)
class FamilyCards:
    kind: str
    label: str
    present: tuple[int, ...]
    reading: VendorReading | None  # None: the family has no vendor tool envctl reads (cuda)
    holders: tuple[Holder, ...] | None  # None: the engine could not be asked


@dataclass(frozen=True)
class HostCards:
    host: str
    root: str
    families: tuple[FamilyCards, ...] = ()
    engine_problem: str | None = None  # why holders are unknown
    notes: tuple[str, ...] = field(default_factory=tuple)


def survey(host, engine=None, engine_problem: str | None = None) -> HostCards:
    """What `host` (a Host) has: the families whose cards are present, each with the vendor
    tool's reading and, with `engine` (docker-py client), the containers holding its cards."""
    families = []
    for kind, fam in FAMILIES.items():
        if kind == "cpu":
            continue
        present = tuple(fam.discover(snapshot(host, fam)))
        if not present:
            continue
        reading = read(kind, host)
        holders = None
        if engine is not None:
            holders = with_processes(read_holders(engine, kind, node_path_for(kind, host.under_root), present, host), reading)
        families.append(FamilyCards(kind, fam.label, present, reading, holders))
    return HostCards(host.name, host.root, tuple(families), engine_problem)


def as_dict(found: HostCards) -> dict:
    """The JSON form: per family, per card, the reading's fields (`health` as printed, `healthy`:
    false where the tool marks it anything but OK, null where it gives no health), `holders` (running ones hold;
    stopped ones are listed with their status) and `processes`; `free`: no running holder
    (null when the engine could not be asked)."""
    families = []
    for fam in found.families:
        cards = []
        for index in fam.present:
            card = fam.reading.card(index) if fam.reading else None
            holders = [h for h in fam.holders or () if index in h.cards]
            processes = fam.reading.processes_on(index) if fam.reading else ()
            cards.append({
                "index": index,
                "model": card.model if card else None,
                "bus_id": card.bus_id if card else None,
                "memory_used": card.memory_used if card else None,
                "memory_total": card.memory_total if card else None,
                "utilization_percent": card.utilization_percent if card else None,
                "temperature_c": card.temperature_c if card else None,
                "health": card.health if card else None,  # as the tool printed it; None: it gives none
                "healthy": None if card is None or card.health is None else not card.unhealthy,
                "holders": [h.as_dict() for h in holders],
                "processes": [{"pid": p.pid, "name": p.name, "memory": p.memory, "pid_in_container": p.pid_in_container}
                              for p in processes],
                "free": None if fam.holders is None else not any(h.holds for h in holders),
            })
        families.append({"kind": fam.kind, "label": fam.label, "tool": fam.reading.tool if fam.reading else None,
                         "memory_unit": fam.reading.unit if fam.reading else None,
                         "tool_problem": fam.reading.problem if fam.reading else None, "cards": cards})
    return {"host": found.host, "root": found.root, "engine_problem": found.engine_problem, "families": families}


def _memory(card: dict, unit: str | None) -> str:
    used, total = card["memory_used"], card["memory_total"]
    if used is None and total is None:
        return "-"
    return f"{'?' if used is None else used}/{'?' if total is None else total} {unit or ''}".rstrip()


def lines(found: HostCards) -> list[str]:
    """The text form: a table per family, one row per card, then its holders and processes."""
    data = as_dict(found)
    out = []
    root = f" (host root {found.root})" if found.root != "/" else ""
    if not data["families"]:
        return [f"{found.host}{root}: no accelerator cards found"]
    if found.engine_problem:
        out.append(f"who holds cards is unknown: {found.engine_problem}")
    for fam in data["families"]:
        tool = f"{fam['tool']}" if fam["tool"] and not fam["tool_problem"] else (fam["tool_problem"] or "no vendor tool read")
        out.append(f"{found.host}{root}  {fam['label']}: {len(fam['cards'])} card(s)  [{tool}]")
        out.append(f"  {'CARD':<5} {'MODEL':<12} {'BUS ID':<13} {'MEMORY':<18} {'UTIL':>4} {'TEMP':>5} "
                   f"{'HEALTH':<8}  HELD BY")
        for card in fam["cards"]:
            running = [h for h in card["holders"] if h["status"] in ("running", "paused", "restarting")]
            held = "unknown" if card["free"] is None else "free" if not running else ", ".join(h["container"] for h in running)
            util = "-" if card["utilization_percent"] is None else f"{card['utilization_percent']}%"
            temp = "-" if card["temperature_c"] is None else f"{card['temperature_c']}C"
            if card["healthy"] is False:  # a count passes it over (envctl/card_choice.py)
                held += " (unhealthy: not taken by a count)"
            out.append(f"  {card['index']:<5} {card['model'] or '-':<12} {card['bus_id'] or '-':<13} "
                       f"{_memory(card, fam['memory_unit']):<18} {util:>4} {temp:>5} {card['health'] or '-':<8}  {held}")
        for card in fam["cards"]:
            for holder in card["holders"]:
                if holder["how"] != "process":  # listed with the processes below
                    out.append(f"    card {card['index']}: {_describe(holder)}")
            for process in card["processes"]:
                memory = f", {process['memory']} {fam['memory_unit']}" if process["memory"] is not None else ""
                out.append(f"    card {card['index']}: process {process['pid']} {process['name'] or '(no name)'}{memory}")
    return out


def _describe(holder: dict) -> str:
    return Holder(holder["container"], holder["id"], tuple(holder["cards"]), holder["how"], holder["status"],
                  holder["environment"], holder["user"], holder["since"] or holder["created"]).describe()
