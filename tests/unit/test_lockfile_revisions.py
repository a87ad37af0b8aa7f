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


TOKEN = "ghp_" + "Lk3" * 12


def test_a_lock_written_with_a_token_as_the_urls_user_still_pins_its_source(tmp_path):
    """Before envctl knew a URL's user name for a token, a source's display (the lock's key) held
    it. Such a lock still pins the source (the loader looks it up by today's display, `***@`),
    and the next write leaves the token out."""
    from envctl.manifest.loader import load

    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(f"name: x\ndescription: d\ndevice: {{kind: cpu}}\nimage: {{ref: busybox:1}}\n"
                        f"artifacts:\n  code: {{source: 'git+https://{TOKEN}@github.com/org/repo@main', target: /code}}\n")
    (tmp_path / "manifest.lock").write_text(
        f"version: 1\nsources:\n  git+https://{TOKEN}@github.com/org/repo@main:\n    revision: '{'1' * 40}'\n    files: []\n")
    assert load(manifest).sources["code"].revision == "1" * 40
    assert list(lockfile.read(manifest)) == ["git+https://***@github.com/org/repo@main"]
    lockfile.write(manifest, {})
    assert TOKEN not in (tmp_path / "manifest.lock").read_text()
    assert lockfile.read(manifest)["git+https://***@github.com/org/repo@main"].revision == "1" * 40


def test_a_cache_record_written_with_a_token_as_the_urls_user_is_listed_without_it(tmp_path):
    """`envctl cache ls` of an entry fetched before envctl knew such a user for a token."""
    import json

    from envctl.artifacts.cache_admin import listing

    placed = tmp_path / "artifacts" / "http" / "f.bin"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"x")
    record = {"source": f"https://{TOKEN}@files.example.com/f.bin", "files": [{"path": "f.bin", "size": 1, "sha256": "0" * 64}]}
    placed.with_name("f.bin.json").write_text(json.dumps(record))
    rows = listing(tmp_path)[0]
    assert [row["source"] for row in rows] == ["https://***@files.example.com/f.bin"]
