"""Clock skew from readings taken over each node's connection (envctl.nodes.clocks): the
reading of `date -u +%s.%N` as GNU coreutils and BusyBox print it, the offset within half the
round trip, the shortest round trip kept, and which skews block."""

import subprocess

import pytest

from envctl.nodes.clocks import READ_CLOCK, ClockError, Reading, best, parse_date, skews


@pytest.mark.parametrize("text, seconds, resolution", [
    ("1764518400.123456789\n", 1764518400.123456789, 1e-9),  # GNU coreutils
    ("1764518400.%N\n", 1764518400.0, 1.0),  # BusyBox 1.35 (Debian 12) without nanoseconds
    ("1764518400.N\n", 1764518400.0, 1.0),  # date implementations that drop the %
    ("1764518400\n", 1764518400.0, 1.0),
])
def test_date_output(text, seconds, resolution):
    parsed = parse_date(text)
    assert parsed[0] == pytest.approx(seconds) and parsed[1] == pytest.approx(resolution)


@pytest.mark.parametrize("text", ["", "Mon Nov 30 15:00:00 UTC 2026", "date: invalid option -- 'u'"])
def test_anything_else_is_not_a_clock(text):
    with pytest.raises(ClockError) as caught:
        parse_date(text)
    assert "not seconds since the epoch" in str(caught.value)


def test_this_machines_date_reads_as_a_clock():
    printed = subprocess.run(list(READ_CLOCK), capture_output=True, text=True, check=True).stdout
    seconds, resolution = parse_date(printed)
    assert seconds > 1.7e9 and resolution == pytest.approx(1e-9)


def test_offset_is_taken_at_the_middle_of_the_round_trip():
    reading = Reading(sent=100.0, remote=160.05, received=100.1)
    assert reading.offset == pytest.approx(60.0) and reading.uncertainty == pytest.approx(0.05)
    assert best([Reading(0, 5, 0.3), reading, Reading(0, 5, 0.2)]) is reading


def test_the_skew_is_against_node_0_and_its_uncertainty_counts():
    node0 = Reading(100.0, 100.5, 100.02)  # node 0 is itself 0.49 s ahead of this machine
    result = skews([node0, Reading(200.0, 200.51, 200.02), Reading(300.0, 302.0, 300.02)])
    assert [s.status for s in result] == ["ok", "ok", "blocked"]
    assert result[1].seconds == pytest.approx(0.01) and result[1].uncertainty == pytest.approx(0.02)
    assert result[1].text() == "+0.010s ±0.020"
    assert result[2].seconds == pytest.approx(1.5)
    assert "clock +1.500 s from node 0's (±0.020 s, round trip 20 ms), more than the 1 s allowed" in result[2].detail


@pytest.mark.parametrize("remote, round_trip, status", [
    (100.9, 0.02, "ok"),  # 0.9 s ± 0.02: within 1 s
    (101.2, 0.02, "blocked"),  # 1.2 s ± 0.02: certainly beyond
    (101.2, 0.6, "unsure"),  # 1.2 s ± 0.3 (a far host): could be 0.9 s
    (100.9, 0.6, "unsure"),  # 0.9 s ± 0.3: could be 1.2 s
    (98.7, 0.02, "blocked"),  # behind counts as much as ahead
])
def test_only_a_certain_skew_blocks(remote, round_trip, status):
    node0 = Reading(100.0, 100.0, 100.0)
    assert skews([node0, Reading(100.0 - round_trip / 2, remote, 100.0 + round_trip / 2)])[1].status == status


def test_a_clock_without_nanoseconds_is_uncertain_by_a_second():
    node0 = Reading(100.0, 100.0, 100.0)
    busybox = Reading(100.0, 100.0, 100.01, resolution=1.0)
    assert skews([node0, busybox])[1].status == "unsure"


def test_a_node_not_read_is_unknown_and_so_is_everyone_without_node_0():
    assert [s.status for s in skews([Reading(0, 0, 0), None])] == ["ok", "unknown"]
    assert [s.status for s in skews([None, Reading(0, 0, 0)])] == ["unknown", "unknown"]
    assert skews([None, Reading(0, 0, 0)])[1].text() == "?"
