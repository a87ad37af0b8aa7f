"""Which cards an environment gets on a shared host, decided from what was observed: pure, like
envctl/decisions.py, so `plan`, `up --dry-run` and `up` choose alike.

- A count takes free cards: present, and held by no other container that runs
  (envctl/card_holders.py), lowest indices first; the cards the environment's own container
  already has are kept when they are still enough, free and healthy. Where the vendor topology says so,
  cards go together: the chips of one board (npu-smi lists several chips under one NPU ID),
  and on an 8-NPU Ascend 910 server up to four cards stay inside one HCCS ring (0-3 or 4-7),
  since NPUs of different rings cannot run one job's collectives (Ascend/ascend-for-volcano,
  "NPU Affinity Scheduling Algorithm Design", affinity policies; tests/fixtures/vendor/npu-smi/
  SOURCES.md). Cambricon's device plugin keeps the chips of one board together by the card serial
  number libcndev gives (cndevGetCardSN; cambricon-k8s-device-plugin, pkg/allocator/board.go);
  cnmon's table, the only MLU source envctl reads, has no such field, so MLU370-X8 chips are taken
  lowest first and the reason says so (no guess from bus IDs or indices).
- A card the vendor tool marks unhealthy (npu-smi's Health anything but OK) is not taken by a
  count, and the reason names it. Not enough free cards is a problem that lists who holds the
  others and how to go on (fewer cards, --share-cards with explicit cards, `envctl cards`).
- Indices are taken as asked; one that another running container holds is a problem naming the
  holder (environment, user, since when), unless sharing was asked for (--share-cards). An
  unhealthy card asked for by index is taken, with a warning.
- With no engine asked, who holds what is unknown: a count takes the first cards present, as
  envctl did before it looked, and the reason says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from envctl.cards import Cards, cards_text

# Ascend 910 (first generation) model names as npu-smi prints them; Atlas A2's 910B1-910B4 and
# A3's chips are full-mesh and have no ring rule.
RING_MODELS = frozenset({"910A", "910B", "910ProA", "910ProB", "910PremiumA"})
RINGS_OF_EIGHT = ((0, 1, 2, 3), (4, 5, 6, 7))
# Cambricon boards with two MLU chips, each its own /dev/cambricon_devN (MLU370-X8: "dual-chip");
# cnmon's table does not say which two rows share a board.
DUAL_CHIP_MLU_MODELS = frozenset({"MLU370-X8"})


@dataclass(frozen=True)
class Topology:
    boards: tuple[tuple[int, ...], ...] = ()  # cards that are one board: taken together
    rings: tuple[tuple[int, ...], ...] = ()  # a request up to a ring's size stays inside one ring
    unknown: str = ""  # what the topology would say but the tool does not tell (added to the reason)


@dataclass(frozen=True)
class Choice:
    cards: tuple[int, ...]  # host indices, in the order the container numbers them from 0
    why: str  # the plan's "which and why"
    problems: tuple[str, ...] = ()  # blockers
    warnings: tuple[str, ...] = ()  # shown in the plan, not blockers (an unhealthy card asked for by index)


def topology(kind: str, reading, present: tuple[int, ...]) -> Topology:
    """What the vendor tool's reading (envctl/devices/usage.VendorReading, or None) says about
    which cards belong together."""
    if reading is None:
        return Topology()
    models = {c.model for c in reading.cards if c.model}
    rings = RINGS_OF_EIGHT if kind == "npu" and models and models <= RING_MODELS and set(present) == set(range(8)) else ()
    unknown = ""
    if kind == "mlu" and models & DUAL_CHIP_MLU_MODELS:
        unknown = (f"{', '.join(sorted(models & DUAL_CHIP_MLU_MODELS))} has two chips per board, and cnmon's table "
                   "does not say which cards share one, so boards are not kept whole")
    return Topology(reading.boards(), rings, unknown)


def unhealthy_text(bad: dict[int, str], tool: str = "the vendor tool") -> str:
    """`card 3 Alarm, card 5 Warning (npu-smi's Health)`: the cards `tool` marks unhealthy."""
    return ", ".join(f"card {c} {bad[c]}" for c in sorted(bad)) + f" ({tool}'s Health)"


def _held_by(holders, own: str | None) -> dict[int, list]:
    busy: dict[int, list] = {}
    for holder in holders:
        if holder.holds and holder.container != own:
            for card in holder.cards:
                busy.setdefault(card, []).append(holder)
    return busy


def held_parts(busy: dict[int, list]) -> list[str]:
    """One text per holder: `cards 0,1 by envctl-a (environment a, user alice, since ...)`."""
    by_holder: dict[str, tuple[object, list[int]]] = {}
    for card in sorted(busy):
        for holder in busy[card]:
            by_holder.setdefault(holder.container, (holder, []))[1].append(card)
    parts = []
    for holder, cards in by_holder.values():
        noun = "card" if len(cards) == 1 else "cards"
        parts.append(f"{noun} {cards_text(cards)} by {holder.describe()}")
    return parts


def held_text(busy: dict[int, list]) -> str:
    """held_parts joined: `cards 0,1 by envctl-a (...); card 5 by job (not envctl's)`."""
    return "; ".join(held_parts(busy))


def _whole_boards_first(free: list[int], count: int, boards: tuple[tuple[int, ...], ...]) -> list[int]:
    board_of = {card: board for board in boards for card in board}
    chosen: list[int] = []
    for card in free:
        board = board_of.get(card, (card,))
        if card not in chosen and all(c in free for c in board) and len(chosen) + len(board) <= count:
            chosen += [c for c in board if c not in chosen]
        if len(chosen) == count:
            return sorted(chosen)
    # The rest: first the chips of boards already split (part held or part chosen) and cards of no
    # board, then, only when they are not enough, chips of a board still whole.
    whole = {card for card in free if all(c in free and c not in chosen for c in board_of.get(card, (card,)))
             and card in board_of}
    for card in sorted(free, key=lambda c: (c in whole, c)):
        if len(chosen) == count:
            break
        if card not in chosen:
            chosen.append(card)
    return sorted(chosen)


def _pick(free: list[int], count: int, topo: Topology) -> tuple[list[int], str]:
    if topo.rings and count <= len(topo.rings[0]):
        for ring in topo.rings:
            inside = [c for c in ring if c in free]
            if len(inside) >= count:
                return _whole_boards_first(inside, count, topo.boards), f", inside HCCS ring {ring[0]}-{ring[-1]}"
        return (_whole_boards_first(free, count, topo.boards),
                f"; no HCCS ring has {count} free cards, so they span rings (collectives between rings fail)")
    return _whole_boards_first(free, count, topo.boards), ", boards kept whole" if topo.boards else ""


def choose(label: str, present: tuple[int, ...], wanted: Cards | None, holders, own: str | None = None,
           own_cards: tuple[int, ...] = (), share: bool = False, topo: Topology = Topology(), where: str = "on this host",
           unknown_why: str = "the engine was not asked", unhealthy: dict[int, str] | None = None,
           tool: str = "the vendor tool") -> Choice:
    """The cards for one environment. `label`: the family's name ("Ascend NPU"); `present`:
    host indices found; `wanted`: a count, indices, or None (one card); `holders`:
    envctl/card_holders.Holder of every container, or None when the engine was not asked;
    `own`: the environment's container name (its own cards are not someone else's);
    `own_cards`: the cards it has now (its label); `where`: "under ROOT" or "on this host";
    `unhealthy`: host index → health, the cards `tool` (e.g. "npu-smi") marks unhealthy
    (VendorReading.unhealthy): a count passes them over, indices take them with a warning."""
    bad = {c: h for c, h in (unhealthy or {}).items() if c in present}
    names = ", ".join(map(str, present)) or "none"
    wanted = 1 if wanted is None else wanted
    if isinstance(wanted, int):
        if wanted == 0:
            return Choice((), "no cards asked for")
        if not present:
            return Choice(tuple(range(wanted)), "", (f"no {label} cards found {where}",))
        if holders is None:
            healthy = tuple(c for c in present if c not in bad)
            sick = f"; passed over as unhealthy: {unhealthy_text(bad, tool)}" if bad else ""
            problems = ((f"{wanted} {label} cards wanted, {len(present)} present ({names}){sick}",)
                        if len(healthy) < wanted else ())
            return Choice(healthy[:wanted], f"the first {wanted} present; who holds cards is unknown ({unknown_why}){sick}",
                          problems)
        busy = _held_by(holders, own)
        free = [c for c in present if c not in busy and c not in bad]
        sick = f"; passed over as unhealthy: {unhealthy_text(bad, tool)}" if bad else ""
        held = (f" (held: {held_text(busy)}{sick})" if busy else f" (no card is held{sick})")
        if len(free) < wanted:
            why_not = "; ".join(part for part in (held_text(busy), unhealthy_text(bad, tool) if bad else "") if part)
            return Choice(tuple(free), "", (f"{wanted} {label} cards wanted, {len(free)} free of {len(present)} present"
                                            + (f": {why_not}" if why_not else f" ({names})")
                                            + _how_to_go_on(wanted, free, {c: h for c, h in busy.items() if c not in bad}),))
        if own_cards and len(own_cards) == wanted and all(c in free for c in own_cards):
            return Choice(tuple(own_cards), f"the cards {own} already has, still free{held}")
        chosen, how = _pick(free, wanted, topo)
        unknown = f"; {topo.unknown}" if topo.unknown and wanted > 1 else ""
        return Choice(tuple(chosen), f"{wanted} free card{'s' if wanted > 1 else ''}, lowest first{how}{unknown}{held}")
    missing = [c for c in wanted if c not in present]
    if missing:
        return Choice(tuple(wanted), "", (f"{label} card {', '.join(map(str, missing))} does not exist {where}; "
                                          f"cards present: {names}",))
    sick = {c: bad[c] for c in wanted if c in bad}
    warnings = (f"{label} {unhealthy_text(sick, tool)} asked for by index: taken as asked; a count would pass "
                f"{'it' if len(sick) == 1 else 'them'} over",) if sick else ()
    sick_why = f"; unhealthy: {unhealthy_text(sick, tool)}" if sick else ""
    if holders is None:
        return Choice(tuple(wanted), f"as asked; who holds cards is unknown ({unknown_why}){sick_why}", (), warnings)
    busy = _held_by(holders, own)
    taken = {c: busy[c] for c in wanted if c in busy}
    if not taken:
        return Choice(tuple(wanted), f"as asked, free{sick_why}", (), warnings)
    if share:
        return Choice(tuple(wanted), f"as asked, shared (--share-cards): {held_text(taken)}{sick_why}", (), warnings)
    free = [c for c in present if c not in busy]
    problems = []
    for part in held_parts(taken):
        problems.append(f"{label} {part}; free now: {cards_text(free) or 'none'} (ask for a count to get free cards, "
                        f"or pass --share-cards to use these anyway)")
    return Choice(tuple(wanted), "", tuple(problems), warnings)


def _how_to_go_on(wanted: int, free: list[int], busy: dict[int, list]) -> str:
    """The ways on from "not enough free cards", as the blocker's last sentence: fewer cards
    (--card-count, a count of free cards), held cards named and shared (--cards with
    --share-cards), and where to see them all."""
    fewer = f"ask for {len(free)} card{'s' if len(free) != 1 else ''} or fewer (--card-count {len(free)}); " if free else ""
    shareable = sorted(free + sorted(busy)[:max(0, wanted - len(free))])
    share = ("name cards and pass --share-cards to use them alongside their holders (--cards "
             f"{cards_text(shareable)} --share-cards); " if busy else "")
    return f". To go on: {fewer}{share}`envctl cards` shows every card and who holds it"
