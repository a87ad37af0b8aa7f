"""Setup markers: files in the container's own filesystem, one per setup step that ran.

A marker is named by the step's index and its chained hash (which covers the step, every step
before it, the artifacts it uses and the image's ref), so which markers exist tells, before
anything runs, which steps are unchanged. A changed image recreates the container, which has no
markers. A step that failed leaves a `.failed` marker of its hash
instead, so the next plan can say "failed last time" rather than "never ran".
"""

from __future__ import annotations

MARKER_DIR = "/var/lib/envctl/setup"
FAILED_SUFFIX = ".failed"


def marker_name(index: int, step_hash: str) -> str:
    """The file name (no directory) of a step's marker: `003-<sha256 hex>`."""
    return f"{index:03d}-{step_hash}"


def marker_path(index: int, step_hash: str) -> str:
    return f"{MARKER_DIR}/{marker_name(index, step_hash)}"


def failed_path(index: int, step_hash: str) -> str:
    return marker_path(index, step_hash) + FAILED_SUFFIX


def index_of(name: str) -> int | None:
    """The step index a marker file name carries, or None for a name envctl did not write."""
    head, _, _ = name.partition("-")
    return int(head) if head.isdigit() else None
