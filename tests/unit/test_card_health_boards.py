"""Card health and boards in the choice of cards: npu-smi's Health column read from recorded
outputs (tests/fixtures/vendor/npu-smi/SOURCES.md) and from the stand-in; a count passes an
unhealthy card over, indices take it with a warning; chips of one board go together where the
tool says which share one (npu-smi's NPU ID), and MLU370-X8 boards, which cnmon's table does not
tell apart, are said to be unknown; "not enough free cards" says how to go on."""

from pathlib import Path

import pytest

import hostsim
from envctl.card_choice import Topology, choose, topology
from envctl.card_holders import Holder
from envctl.devices import cnmon_table, npu_smi_table
from envctl.devices.usage import VendorReading
from envctl.host_cards import as_dict, lines, survey
from envctl.hosts.local import LocalHost
from envctl.manifest.loader import load
from envctl.observe import observe
from envctl.plan import Options, build_plan
from envctl.render import plan_text
from fake_engine import FakeEngine

VENDOR = Path(__file__).parent.parent / "fixtures" / "vendor"
NPU_SMI = ["npu-smi-24.1.0.3-910b2.txt", "npu-smi-24.1.0-910prob.txt", "npu-smi-a3-phy-id.txt",
           "npu-smi-25.2.0-310p3.txt", "npu-smi-25-processes.txt"]
CNMON = ["cnmon-v4.20.11-mlu370-x4.txt", "cnmon-v5.10.13-mlu370-x8.txt", "cnmon-v5.10.31-8-cards-masked.txt"]


def recorded(tool: str, name: str) -> str:
    return (VENDOR / tool / name).read_text()


def with_health(text: str, nth: int, health: str) -> str:
    """The recorded output with the Health cell of its `nth` chip row (0-based) set to `health`,
    its width kept: the only change, as npu-smi prints a chip it marks (SOURCES.md)."""
    out, seen = [], 0
    for line in text.splitlines(keepends=True):
        cells = line.split("|")
        if len(cells) > 3 and cells[2].strip() == "OK":
            if seen == nth:
                cell = cells[2]
                cells[2] = cell[:1] + health.ljust(len(cell) - 1)
                line = "|".join(cells)
            seen += 1
        out.append(line)
    assert seen > nth, f"no chip row {nth}"
    return "".join(out)


def reading(text: str) -> VendorReading:
    cards, processes = npu_smi_table.parse(text)
    return VendorReading("/usr/local/sbin/npu-smi info", "MB", tuple(cards), tuple(processes))


@pytest.mark.parametrize("name", NPU_SMI)
def test_every_recorded_npu_smi_layout_reads_health_ok(name):
    cards, _ = npu_smi_table.parse(recorded("npu-smi", name))
    assert cards and {c.health for c in cards} == {"OK"}
    assert not any(c.unhealthy for c in cards)


@pytest.mark.parametrize("name", NPU_SMI)
@pytest.mark.parametrize("health", ["Warning", "Alarm", "Critical", "UNKNOWN"])
def test_a_chip_marked_warning_alarm_critical_or_unknown_is_unhealthy_in_every_layout(name, health):
    healthy, _ = npu_smi_table.parse(recorded("npu-smi", name))
    marked = reading(with_health(recorded("npu-smi", name), 1 if len(healthy) > 1 else 0, health))
    chip = healthy[1] if len(healthy) > 1 else healthy[0]
    assert marked.unhealthy() == {chip.index: health}
    # the rest of the row is read as before
    assert [(c.index, c.bus_id, c.memory_total) for c in marked.cards] == [(c.index, c.bus_id, c.memory_total)
                                                                           for c in healthy]


def test_the_second_die_of_an_a3_board_is_marked_by_its_phy_id():
    marked = reading(with_health(recorded("npu-smi", "npu-smi-a3-phy-id.txt"), 1, "Alarm"))
    assert marked.unhealthy() == {1: "Alarm"} and marked.boards()[0] == (0, 1)


@pytest.mark.parametrize("name", CNMON)
def test_cnmon_gives_no_health_so_no_card_is_called_unhealthy(name):
    cards, _ = cnmon_table.parse(recorded("cnmon", name))
    assert cards and {c.health for c in cards} == {None} and not any(c.unhealthy for c in cards)


def test_the_stand_in_prints_health_as_npu_smi_does(tmp_path):
    text = hostsim.npu_smi_table("24.1.0", 4, {}, [], "910B", {1: "Warning", 3: "Critical"})
    assert reading(text).unhealthy() == {1: "Warning", 3: "Critical"}


# -- the choice ---------------------------------------------------------------------------------

def held(container, *cards):
    return Holder(container, container, tuple(cards), "device nodes", "running", None, None, "2026-11-30 09:15 UTC")


def test_a_count_passes_an_unhealthy_card_over_and_says_so():
    marked = reading(with_health(hostsim.npu_smi_table("24.1.0", 8, {}, [], "910ProB"), 0, "Alarm"))
    topo = topology("npu", marked, tuple(range(8)))
    choice = choose("Ascend NPU", tuple(range(8)), 2, [], topo=topo, unhealthy=marked.unhealthy(), tool="npu-smi")
    assert choice.cards == (1, 2) and choice.problems == () and choice.warnings == ()
    assert choice.why == ("2 free cards, lowest first, inside HCCS ring 0-3 (no card is held; passed over as unhealthy: "
                          "card 0 Alarm (npu-smi's Health))")


def test_without_an_engine_a_count_still_passes_unhealthy_cards_over():
    choice = choose("Ascend NPU", (0, 1, 2), 1, None, unhealthy={0: "Critical"}, tool="npu-smi")
    assert choice.cards == (1,) and "passed over as unhealthy: card 0 Critical" in choice.why


def test_an_unhealthy_card_asked_for_by_index_is_taken_with_a_warning():
    choice = choose("Ascend NPU", tuple(range(4)), (0, 1), [], unhealthy={1: "Warning"}, tool="npu-smi")
    assert choice.cards == (0, 1) and choice.problems == ()
    assert choice.warnings == ("Ascend NPU card 1 Warning (npu-smi's Health) asked for by index: taken as asked; "
                               "a count would pass it over",)
    assert choice.why == "as asked, free; unhealthy: card 1 Warning (npu-smi's Health)"
    # without an engine to ask: the same warning
    unknown = choose("Ascend NPU", tuple(range(4)), (1,), None, unhealthy={1: "Alarm"}, tool="npu-smi")
    assert unknown.warnings and unknown.why.endswith("; unhealthy: card 1 Alarm (npu-smi's Health)")
    # shared or held: the warning stays, the holder's blocker too
    refused = choose("Ascend NPU", tuple(range(4)), (1,), [held("job", 1)], unhealthy={1: "Alarm"}, tool="npu-smi")
    assert refused.problems and refused.warnings and "Alarm" in refused.warnings[0]


def test_an_environments_own_card_that_turned_unhealthy_is_not_kept():
    choice = choose("Ascend NPU", tuple(range(4)), 2, [], own="envctl-a", own_cards=(0, 1), unhealthy={1: "Critical"},
                    tool="npu-smi")
    assert choice.cards == (0, 2) and "passed over as unhealthy: card 1 Critical" in choice.why
    kept = choose("Ascend NPU", tuple(range(4)), 2, [], own="envctl-a", own_cards=(0, 1), unhealthy={3: "Warning"})
    assert kept.cards == (0, 1) and kept.why.startswith("the cards envctl-a already has, still free")


def test_not_enough_healthy_free_cards_names_holders_unhealthy_cards_and_the_ways_on():
    choice = choose("Ascend NPU", tuple(range(4)), 2, [held("job", 0)], unhealthy={2: "Alarm", 3: "Critical"},
                    tool="npu-smi")
    assert choice.problems == (
        "2 Ascend NPU cards wanted, 1 free of 4 present: card 0 by job (not envctl's, since 2026-11-30 09:15 UTC); "
        "card 2 Alarm, card 3 Critical (npu-smi's Health). To go on: ask for 1 card or fewer (--card-count 1); "
        "name cards and pass --share-cards to use them alongside their holders (--cards 0,1 --share-cards); "
        "`envctl cards` shows every card and who holds it",)


def test_with_no_card_free_and_none_held_only_the_cards_view_is_offered():
    choice = choose("Ascend NPU", (0, 1), 1, [], unhealthy={0: "Alarm", 1: "Alarm"}, tool="npu-smi")
    assert choice.problems == ("1 Ascend NPU cards wanted, 0 free of 2 present: card 0 Alarm, card 1 Alarm "
                               "(npu-smi's Health). To go on: `envctl cards` shows every card and who holds it",)


def test_a_count_takes_a_whole_free_board_when_one_chip_of_board_0_is_held():
    # Atlas A3 (recorded): the two dies under one NPU ID are one board, as the reading groups them.
    assert reading(recorded("npu-smi", "npu-smi-a3-phy-id.txt")).boards() == ((0, 1),)
    # 8 dies = 4 boards; die 0 held: a count of 2 takes the whole board 2,3, not die 1 and die 2.
    topo = Topology(boards=((0, 1), (2, 3), (4, 5), (6, 7)))
    choice = choose("Ascend NPU", tuple(range(8)), 2, [held("job", 0)], topo=topo)
    assert choice.cards == (2, 3) and "boards kept whole" in choice.why
    # a single card: the free die of the split board, which leaves the whole boards whole
    assert choose("Ascend NPU", tuple(range(8)), 1, [held("job", 0)], topo=topo).cards == (1,)


def test_mlu370_x8_boards_are_not_read_from_cnmon_and_the_reason_says_so():
    cards, _ = cnmon_table.parse(recorded("cnmon", "cnmon-v5.10.13-mlu370-x8.txt"))
    x8 = VendorReading("/usr/bin/cnmon", "MiB", tuple(cards))
    topo = topology("mlu", x8, (0, 1))
    assert topo.boards == () and "MLU370-X8 has two chips per board" in topo.unknown
    choice = choose("Cambricon MLU", (0, 1), 2, [], topo=topo)
    assert choice.cards == (0, 1) and "cnmon's table does not say which cards share one" in choice.why
    one = choose("Cambricon MLU", (0, 1), 1, [], topo=topo)
    assert "two chips per board" not in one.why  # a single card has no board to keep whole
    # Single-chip boards (MLU370-X4) and a masked model name: nothing unknown to say.
    for name in ("cnmon-v4.20.11-mlu370-x4.txt", "cnmon-v5.10.31-8-cards-masked.txt"):
        other, _ = cnmon_table.parse(recorded("cnmon", name))
        assert topology("mlu", VendorReading("cnmon", "MiB", tuple(other)), ()).unknown == ""


# -- through observe and plan, and in `envctl cards` --------------------------------------------

MANIFEST = """\
name: lab
description: a shared server
device: {kind: npu, cards: %s}
image: {ref: "lab/base:1"}
"""


def plan_on(tmp_path, clean_env, cards, health):
    tmp_path = tmp_path / ("plan-" + cards.replace('"', ""))
    root = tmp_path / "root"
    hostsim.npu_host(root, cards=8, model="910ProB", health=health)
    engine = FakeEngine()
    engine.add_image("sha256:" + "a" * 64, "lab/base:1")
    environ = {**clean_env, "ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_WORKSPACE": str(tmp_path / "ws")}
    path = tmp_path / "lab.yaml"
    path.write_text(MANIFEST % cards)
    loaded = load(str(path), environ=environ)
    return build_plan(loaded, observe(LocalHost(str(root)), loaded, engine, environ=environ), Options(), environ=environ)


def test_plan_passes_an_alarm_card_over_and_warns_for_one_asked_by_index(tmp_path, clean_env):
    counted = plan_on(tmp_path, clean_env, "2", {0: "Alarm"})
    assert counted.devices.cards == (1, 2) and counted.blockers == ()
    assert "passed over as unhealthy: card 0 Alarm (npu-smi's Health)" in plan_text(counted)
    indexed = plan_on(tmp_path, clean_env, '"0-1"', {0: "Alarm"})
    assert indexed.devices.cards == (0, 1) and indexed.blockers == ()
    assert indexed.notes == ("warning: Ascend NPU card 0 Alarm (npu-smi's Health) asked for by index: taken as asked; "
                             "a count would pass it over",)
    assert "warning: Ascend NPU card 0 Alarm" in plan_text(indexed)


def test_cards_shows_health_and_that_a_count_passes_the_card_over(tmp_path):
    root = hostsim.npu_host(tmp_path / "root", cards=4, health={3: "Critical"})
    found = survey(LocalHost(str(root)), FakeEngine())
    data = as_dict(found)["families"][0]["cards"]
    assert [(c["health"], c["healthy"]) for c in data] == [("OK", True)] * 3 + [("Critical", False)]
    text = lines(found)
    assert "HEALTH" in text[1]
    row = next(line for line in text if line.startswith("  3 "))
    assert "Critical" in row and row.endswith("free (unhealthy: not taken by a count)")
    mlu = as_dict(survey(LocalHost(str(hostsim.mlu_host(tmp_path / "mlu", cards=2))), FakeEngine()))
    assert {c["healthy"] for c in mlu["families"][0]["cards"]} == {None}
