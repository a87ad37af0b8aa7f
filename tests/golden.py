"""Golden files: expected output kept in the repository and compared exactly.

Run with ENVCTL_UPDATE_GOLDEN=1 to rewrite them after an intended change, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

# Read once at import: tests clear ENVCTL_* variables from their own environment.
UPDATE = os.environ.get("ENVCTL_UPDATE_GOLDEN") == "1"


def check(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}; run with ENVCTL_UPDATE_GOLDEN=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"output differs from {path} (ENVCTL_UPDATE_GOLDEN=1 rewrites it)"
