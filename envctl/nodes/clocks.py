"""Clock skew between nodes, from readings of each node's clock taken over its SSH connection.

A reading is this machine's clock just before the command was sent (`sent`), the node's clock
as its `date +%s.%N` printed it (`remote`), and this machine's clock when the answer came back
(`received`), all in seconds since the epoch. The node read its clock somewhere inside the
round trip, so its offset from this machine is `remote - (sent + received) / 2`, give or take
half the round trip (NTP's own estimate, RFC 5905 §8, with the server's processing time inside
the round trip). Of several readings the one with the shortest round trip is kept (NTP's
clock filter does the same). Skews are then taken against node 0, whose own uncertainty adds
to every other node's.

Why it matters: the nodes' logs are read side by side by time, checkpoints and run
directories are compared by mtime, and a node whose clock is far off usually has no time
service at all. Ceph's monitors warn past 0.05 s (mon_clock_drift_allowed) and its test lab
relaxed that to 1 s (ceph/teuthology #1146); ntpd keeps LAN clocks well within 0.128 s. So a
skew beyond TOLERANCE_S is a blocker only when it is certain (beyond tolerance plus the
measurement's uncertainty), and a round trip too long to tell is said, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

TOLERANCE_S = 1.0  # largest skew against node 0 that passes
SAMPLES = 3  # readings per node; the shortest round trip wins
MORE_SAMPLES = 8  # at most, while the best round trip is still longer than GOOD_ROUND_TRIP_S (a loaded link)
GOOD_ROUND_TRIP_S = TOLERANCE_S / 4  # half of it, twice (this node's and node 0's), stays under half the tolerance
READ_CLOCK = ("date", "-u", "+%s.%N")  # GNU coreutils; BusyBox without nanoseconds prints "…%N" or "…N"


class ClockError(ValueError):
    """A node's clock reading could not be read."""


def parse_date(text: str) -> tuple[float, float]:
    """`date +%s.%N` output → (seconds since the epoch, resolution in seconds). A date
    without %N (some BusyBox builds print `1764518400.N` or `.%N`) gives whole seconds, with a
    resolution of 1 s. Raises ClockError for anything else."""
    text = text.strip()
    whole, _, fraction = text.partition(".")
    if not whole.isdigit():
        raise ClockError(f"`{' '.join(READ_CLOCK)}` printed {text[:40]!r}, not seconds since the epoch")
    if fraction.isdigit():
        return float(f"{whole}.{fraction}"), 10.0 ** -len(fraction)
    return float(whole), 1.0


@dataclass(frozen=True)
class Reading:
    sent: float  # this machine's clock before asking (s since the epoch)
    remote: float  # the node's clock (s since the epoch)
    received: float  # this machine's clock when the answer came (s since the epoch)
    resolution: float = 0.0  # of `remote` (1 s without %N)

    @property
    def round_trip(self) -> float:
        return self.received - self.sent

    @property
    def offset(self) -> float:
        """The node's clock minus this machine's, in seconds."""
        return self.remote - (self.sent + self.received) / 2

    @property
    def uncertainty(self) -> float:
        """± seconds around `offset`: half the round trip and the reading's resolution."""
        return self.round_trip / 2 + self.resolution


def best(readings: list[Reading]) -> Reading:
    """The reading with the shortest round trip. Raises ClockError when there is none."""
    if not readings:
        raise ClockError("no clock reading")
    return min(readings, key=lambda r: r.round_trip)


@dataclass(frozen=True)
class Skew:
    seconds: float | None  # this node's clock minus node 0's; None when it could not be read
    uncertainty: float  # ± seconds
    round_trip: float | None  # of the reading kept, seconds
    status: str  # ok | blocked | unsure | unknown
    detail: str  # for the table's problem lines; "" when ok

    def text(self) -> str:
        """For a table cell: `+0.004s ±0.003` (node 0: `0 (ref)`), or `?`."""
        if self.seconds is None:
            return "?"
        return f"{self.seconds:+.3f}s ±{self.uncertainty:.3f}"


def skews(readings: list[Reading | None], tolerance: float = TOLERANCE_S) -> list[Skew]:
    """Each node's skew against node 0 (rank order; None: a node whose clock was not read).
    blocked: off by more than `tolerance` even at the edge of the uncertainty; unsure: the
    uncertainty is too wide to tell (a far host); unknown: not read here or at node 0."""
    out = []
    reference = readings[0] if readings else None
    for rank, reading in enumerate(readings):
        if reading is None or reference is None:
            out.append(Skew(None, 0.0, None, "unknown", "clock not read" if reading is None else
                            "node 0's clock was not read"))
            continue
        if rank == 0:
            out.append(Skew(0.0, reading.uncertainty, reading.round_trip, "ok", ""))
            continue
        skew = reading.offset - reference.offset
        uncertainty = reading.uncertainty + reference.uncertainty
        said = f"clock {skew:+.3f} s from node 0's (±{uncertainty:.3f} s, round trip {reading.round_trip * 1000:.0f} ms)"
        if abs(skew) - uncertainty > tolerance:
            out.append(Skew(skew, uncertainty, reading.round_trip, "blocked",
                            f"{said}, more than the {tolerance:g} s allowed: synchronise the clocks (NTP, chrony)"))
        elif abs(skew) + uncertainty > tolerance:
            out.append(Skew(skew, uncertainty, reading.round_trip, "unsure",
                            f"{said}: cannot tell whether it is within {tolerance:g} s"))
        else:
            out.append(Skew(skew, uncertainty, reading.round_trip, "ok", ""))
    return out
