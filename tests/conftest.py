import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """An environment that never reads the user's own directories or variables."""
    for name in list(os.environ):
        if name.startswith("ENVCTL_") or name in ("HF_TOKEN", "HF_ENDPOINT", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENVCTL_CACHE", "/var/cache/envctl-test")
    monkeypatch.setenv("ENVCTL_WORKSPACE", "/var/lib/envctl-test")
    monkeypatch.chdir(tmp_path)
    return os.environ


# What needs a real engine, the SSH lab, stand-in images or loopback servers is the slow tier; the rest runs in
# well under a minute with `pytest -m "not slow"` (README, "Tests").
_SLOW_DIRS = ("integration", "remote", "artifacts")  # artifacts: loopback HTTP/FTP/git servers
_SLOW_FILES = ("test_remote_sources.py", "test_packaging.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = item.path.parts
        if any(d in parts for d in _SLOW_DIRS) or item.path.name in _SLOW_FILES:
            item.add_marker(pytest.mark.slow)
