"""Which accelerator cards: the one reading of a card request, wherever it is written.

A request is either a count (`2`: the first two cards present) or card indices. Indices are
written the same way in a manifest (`device.cards`, `entrypoints.<name>.cards`), on the command
line (`--cards`), in the hosts inventory (`cards:`) and in envctl's container labels:

    0          one card
    0,2        a list
    0-3        a range, both ends included (0,1,2,3)
    0,2-3      lists of indices and ranges together
    [0, 2]     a YAML list of indices (manifest and inventory)

A whole number that YAML reads as a number (`cards: 2`) is a count; text is always indices,
so `--cards 2` means card 2. Order is kept as written: it is the order the runtime numbers the
cards from 0 inside the container (MLU_VISIBLE_DEVICES / ASCEND_VISIBLE_DEVICES renumber them).

Every refusal is a `CardsError` (a ValueError) that names the bad item; callers put where it was
written (file:line, `--cards`, the inventory entry) in front of it, so the same mistake reads the
same wherever it is made.
"""

from __future__ import annotations

import re
from typing import Union

# Far above any accelerator server (16 cards per host at most today), and low enough that a slip
# such as `0-99999999` is refused instead of building a list of a hundred million indices.
MAX_INDEX = 1023

Cards = Union[int, tuple[int, ...]]  # a count, or host/container card indices in order
"""A parsed request: an int is a count of cards, a tuple the indices themselves."""

_TOKEN = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")
EXAMPLE = "write e.g. 0,1 or 0-3 or 0,2-3"


class CardsError(ValueError):
    """A card request envctl cannot read; the message names the bad item and what to write."""


def _describe(value: object) -> str:
    kind = {str: "text", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
            tuple: "a list", dict: "a mapping", type(None): "nothing (null)"}.get(type(value), type(value).__name__)
    return f"{kind} ({value!r})" if isinstance(value, (str, int, float, bool)) else kind


def _index(text: str, written: str) -> int:
    number = int(text)
    if number > MAX_INDEX:
        raise CardsError(f"'{written}': card {number} is beyond the highest index envctl takes ({MAX_INDEX})")
    return number


def parse_indices(text: str) -> tuple[int, ...]:
    """Card indices written as text (`0`, `0,2`, `0-3`, `0,2-3`) → a tuple in the order written.

    Raises CardsError naming the item: an empty request or item, something that is not a number
    or a low-high range, a range written high to low, a card named twice, an index above MAX_INDEX.
    """
    if not isinstance(text, str):
        raise CardsError(f"expected card indices as text, got {_describe(text)}")
    if not text.strip():
        raise CardsError(f"'{text}': no cards named ({EXAMPLE})")
    out: list[int] = []
    for item in text.split(","):
        token = item.strip()
        if not token:
            raise CardsError(f"'{text}': an empty item between commas ({EXAMPLE})")
        match = _TOKEN.match(token)
        if match is None:
            raise CardsError(f"'{text}': '{token}' is not a card index or a range ({EXAMPLE})")
        first = _index(match.group(1), text)
        last = _index(match.group(2), text) if match.group(2) is not None else first
        if last < first:
            raise CardsError(f"'{text}': the range '{token}' runs backwards (write {last}-{first})")
        for number in range(first, last + 1):
            if number in out:
                raise CardsError(f"'{text}': card {number} is named twice")
            out.append(number)
    return tuple(out)


def parse_cards(value: object) -> Cards:
    """A card request as YAML gives it (manifest, inventory) → a count (int) or indices (tuple).

    `2` → 2 (a count); `"0-3"` → (0, 1, 2, 3); `[0, 2]` → (0, 2); `[]` → () (no cards).
    Raises CardsError for a negative count, a boolean, a float, a list holding anything but
    indices, a repeated index, or text that `parse_indices` refuses.
    """
    if isinstance(value, bool):
        raise CardsError(f"expected a card count (2) or card indices (0,1 or 0-3 or [0, 1]), got {_describe(value)}")
    if isinstance(value, int):
        if value < 0:
            raise CardsError(f"{value}: a card count cannot be negative")
        if value > MAX_INDEX + 1:
            raise CardsError(f"{value}: more cards than envctl takes ({MAX_INDEX + 1})")
        return value
    if isinstance(value, str):
        return parse_indices(value)
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                raise CardsError(f"{_describe(item)} in the list is not a card index; "
                                 f"card indices are whole numbers from 0 (e.g. [0, 1])")
            if item > MAX_INDEX:
                raise CardsError(f"card {item} is beyond the highest index envctl takes ({MAX_INDEX})")
        repeated = sorted({item for item in value if list(value).count(item) > 1})
        if repeated:
            raise CardsError(f"card {', '.join(map(str, repeated))} is named twice in {list(value)}")
        return tuple(value)
    raise CardsError(f"expected a card count (2) or card indices (0,1 or 0-3 or [0, 1]), got {_describe(value)}")


def cards_text(indices: tuple[int, ...] | list[int]) -> str:
    """Indices → the text `parse_indices` reads back (`0,1,2`); "" for none. Used for labels,
    plans and the visibility variables, which all take comma-separated indices."""
    return ",".join(str(i) for i in indices)


def count_of(cards: Cards | list[int] | None) -> int | None:
    """How many cards a request names (a count is itself); None when there is no request."""
    if cards is None:
        return None
    return cards if isinstance(cards, int) else len(cards)
