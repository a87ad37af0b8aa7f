"""Card requests: one reading (envctl.cards) for the manifest, --cards, the inventory and labels.

The table below is run through each of them; they must take the same texts to the same cards
and refuse the same texts with the same message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hostsim
from envctl.cards import MAX_INDEX, CardsError, cards_text, count_of, parse_cards, parse_indices
from envctl.cli_remote import with_host_cards
from envctl.errors import ManifestError
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
from envctl.plan import Options
from envctl.remote.inventory import load_inventory

EXAMPLE = "(write e.g. 0,1 or 0-3 or 0,2-3)"

# Text as a user writes it after --cards, or quoted in YAML → the indices, or the message.
TEXTS = [
    ("0", (0,)),
    ("2", (2,)),  # text is always an index, never a count
    ("0,2", (0, 2)),
    ("0-3", (0, 1, 2, 3)),
    ("0,2-3", (0, 2, 3)),
    ("6,7", (6, 7)),
    ("3,1", (3, 1)),  # the order written is the order the container numbers them
    (" 1 , 3 ", (1, 3)),
    ("4-4", (4,)),
    ("3-0", "'3-0': the range '3-0' runs backwards (write 0-3)"),
    ("0,,1", f"'0,,1': an empty item between commas {EXAMPLE}"),
    ("0,1,", f"'0,1,': an empty item between commas {EXAMPLE}"),
    ("", f"'': no cards named {EXAMPLE}"),
    ("x", f"'x': 'x' is not a card index or a range {EXAMPLE}"),
    ("0-x", f"'0-x': '0-x' is not a card index or a range {EXAMPLE}"),
    ("-1", f"'-1': '-1' is not a card index or a range {EXAMPLE}"),
    ("0-1-2", f"'0-1-2': '0-1-2' is not a card index or a range {EXAMPLE}"),
    ("0;1", f"'0;1': '0;1' is not a card index or a range {EXAMPLE}"),
    ("1.5", f"'1.5': '1.5' is not a card index or a range {EXAMPLE}"),
    ("１", f"'１': '１' is not a card index or a range {EXAMPLE}"),  # a full-width digit
    ("1,1", "'1,1': card 1 is named twice"),
    ("0-2,1", "'0-2,1': card 1 is named twice"),
    ("0-99999999", f"'0-99999999': card 99999999 is beyond the highest index envctl takes ({MAX_INDEX})"),
]

# YAML values that are not text: a count, lists, and what is refused.
VALUES = [
    (2, 2),
    (0, 0),
    ([0, 2], (0, 2)),
    ([3, 1], (3, 1)),
    ([], ()),
    (-1, "-1: a card count cannot be negative"),
    (True, "expected a card count (2) or card indices (0,1 or 0-3 or [0, 1]), got a boolean (True)"),
    (1.5, "expected a card count (2) or card indices (0,1 or 0-3 or [0, 1]), got a number (1.5)"),
    ({"a": 1}, "expected a card count (2) or card indices (0,1 or 0-3 or [0, 1]), got a mapping"),
    ([0, 0], "card 0 is named twice in [0, 0]"),
    (["0-3"], "text ('0-3') in the list is not a card index; card indices are whole numbers from 0 (e.g. [0, 1])"),
    ([-1], "an integer (-1) in the list is not a card index; card indices are whole numbers from 0 (e.g. [0, 1])"),
    ([True], "a boolean (True) in the list is not a card index; card indices are whole numbers from 0 (e.g. [0, 1])"),
]


def _expect(value, expected):
    if isinstance(expected, str):
        with pytest.raises(CardsError) as caught:
            parse_cards(value)
        assert str(caught.value) == expected
    else:
        assert parse_cards(value) == expected


@pytest.mark.parametrize("text,expected", TEXTS)
def test_text(text, expected):
    _expect(text, expected)


@pytest.mark.parametrize("value,expected", VALUES)
def test_yaml_values(value, expected):
    _expect(value, expected)


@pytest.mark.parametrize("indices", [(0,), (0, 1, 2, 3), (7, 2, 5), tuple(range(MAX_INDEX + 1))])
def test_rendered_text_reads_back(indices):
    assert parse_indices(cards_text(indices)) == indices


def test_parse_indices_never_takes_a_count():
    with pytest.raises(CardsError, match="expected card indices as text, got an integer"):
        parse_indices(2)


def test_count_of():
    assert [count_of(v) for v in (None, 0, 3, (0, 1), [5])] == [None, 0, 3, 2, 1]


# ---------------------------------------------------------------------------- the three readers agree

MANIFEST = """\
name: cards-demo
description: cards written in several ways
device: {{kind: mlu, cards: {cards}}}
image: {{ref: example/image:1}}
"""


def _yaml(value) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON is YAML: quoted text stays text


def _manifest(tmp_path: Path, value):
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MANIFEST.format(cards=_yaml(value)))
    try:
        cards = load(path, environ={}, roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path)).manifest.device.cards
    except ManifestError as error:
        assert len(error.problems) == 1, error.problems
        located, _, message = str(error.problems[0]).partition(" device.cards: ")
        assert located.startswith(f"{path}:3:"), located  # at the line it is written on
        return message
    return cards if isinstance(cards, int) else tuple(cards)


def _inventory(tmp_path: Path, value):
    path = tmp_path / "inventory.yaml"
    path.write_text(f"hosts:\n  lab1:\n    cards: {_yaml(value)}\n")
    try:
        return load_inventory(path, {}).hosts["lab1"].cards
    except ManifestError as error:
        assert len(error.problems) == 1, error.problems
        located, _, message = str(error.problems[0]).partition(" hosts.lab1.cards: ")
        assert located == f"{path}:3:12:", located
        return message


@pytest.mark.parametrize("value,expected", TEXTS + VALUES)
def test_manifest_and_inventory_agree(tmp_path, value, expected):
    assert _manifest(tmp_path, value) == expected
    assert _inventory(tmp_path, value) == expected


def _cli(tmp_path: Path, text: str):
    """`envctl plan --cards TEXT` on a host with 8 MLU cards: the cards it plans, or its error."""
    hostsim.mlu_host(tmp_path / "root", cards=8)
    manifest = tmp_path / "cli" / "manifest.yaml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(MANIFEST.format(cards=1))
    env = dict(os.environ, ENVCTL_HOST_ROOT=str(tmp_path / "root"), HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "envctl", "plan", str(manifest), "--json", "--cards", text],
                          capture_output=True, text=True, env=env, timeout=60)
    if done.returncode == 2:
        assert done.stdout == ""
        return done.stderr
    assert done.stdout, done.stderr
    return tuple(json.loads(done.stdout)["devices"]["cards"])


@pytest.mark.parametrize("text,expected", TEXTS)
def test_command_line_agrees(tmp_path, text, expected):
    if isinstance(expected, str):
        assert _cli(tmp_path, text) == f"error: --cards {expected}\n"
    else:
        assert _cli(tmp_path, text) == expected


def test_an_inventory_count_stays_a_count(tmp_path):
    """`cards: 2` in the inventory is the first two cards present, as in a manifest (it was
    once turned into the indices 0,1, which fails on a host whose card 0 is gone)."""
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent("""\
        hosts:
          a: {cards: 2}
          b: {cards: 2-3}
          c: {}
    """))
    hosts = load_inventory(path, {}).hosts
    assert with_host_cards(Options(), hosts["a"]).cards == 2
    assert with_host_cards(Options(), hosts["b"]).cards == (2, 3)
    assert with_host_cards(Options(), hosts["c"]).cards is None
    assert with_host_cards(Options(cards=(5,)), hosts["a"]).cards == (5,)  # --cards wins
