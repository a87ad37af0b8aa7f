"""Reading a node's clock over its connection (envctl.multinode.preflight.read_clock), with this
machine as the node (a LocalHost runs the real `date`): three readings on a quick link, more
while every answer so far came slowly (a loaded host), the quickest kept."""

import time

from envctl.hosts.local import LocalHost
from envctl.multinode.preflight import read_clock
from envctl.nodes import clocks


class SlowAtFirst(LocalHost):
    """This machine, whose first `slow` answers take 0.6 s longer (more than GOOD_ROUND_TRIP_S)."""

    def __init__(self, slow: int):
        super().__init__()
        self.slow, self.calls = slow, 0

    def run(self, argv, timeout=30):
        self.calls += 1
        if self.calls <= self.slow:
            time.sleep(0.6)
        return super().run(argv, timeout)


def test_this_machines_clock_reads_without_skew_within_its_uncertainty():
    reading = read_clock(LocalHost())
    assert abs(reading.offset) <= reading.uncertainty  # the same clock on both sides


def test_slow_answers_are_read_again_and_the_quickest_is_kept():
    host = SlowAtFirst(slow=3)
    reading = read_clock(host)
    assert host.calls > 3 and reading.round_trip < 0.6  # one of the quick answers


def test_no_more_than_the_most_readings_however_slow():
    host = SlowAtFirst(slow=100)
    read_clock(host)
    assert host.calls == clocks.MORE_SAMPLES
