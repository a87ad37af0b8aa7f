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
