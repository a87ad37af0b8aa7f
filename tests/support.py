"""Constants the test packages share (imported by name; conftest modules are not importable
unambiguously when there are several)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# One tag and one name prefix per test session (its pid): two sessions on one engine (a developer's
# run beside CI's, or two checkouts) never retag or remove each other's image and containers.
SESSION = f"s{os.getpid()}"
IMAGE = f"envctl-it/busybox:{SESSION}"  # the integration tests' locally built image
