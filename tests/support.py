"""Constants the test packages share (imported by name; conftest modules are not importable
unambiguously when there are several)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = "envctl-it/busybox:1"  # the integration tests' locally built image
