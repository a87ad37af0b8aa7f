"""The artifact lock file: revisions stay text however YAML would read them."""
from pathlib import Path
import pytest
from envctl.artifacts import lockfile
from envctl.errors import ManifestError

def test_an_all_digit_commit_is_written_quoted_and_read_back_as_text(tmp_path):
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("name: x\n")
    lockfile.write(manifest, {"git+https://h/r@main": lockfile.Locked("git+https://h/r@main", "0" * 40, ())})
    assert lockfile.read(manifest)["git+https://h/r@main"].revision == "0" * 40

def test_an_unquoted_numeric_revision_written_by_hand_is_refused_not_ignored(tmp_path):
    manifest = tmp_path / "manifest.yaml"
    (tmp_path / "manifest.lock").write_text("version: 1\nsources:\n  git+https://h/r@main:\n    revision: 0123456\n    files: []\n")
    with pytest.raises(ManifestError, match="quote it"):
        lockfile.read(manifest)
