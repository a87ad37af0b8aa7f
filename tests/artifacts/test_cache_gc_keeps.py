"""`envctl cache gc` keeps what a manifest still names: image tarballs (pinned by sha256, by the
lock file, or by URL alone) and artifacts whose placed copy is gone. Run through the command
line on a real cache directory; only what nothing names goes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from envctl.artifacts import lockfile
from envctl.artifacts.cache import Cache, PlacedFile
from envctl.artifacts.download import Downloader, RemoteFile
from envctl.artifacts.sources import parse_source
from servers.fixtures import file_server  # noqa: F401

TARBALL = b"not really a tarball, but bytes gc must not lose " * 100


def gc(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(ENVCTL_CACHE=str(tmp_path / "cache"), ENVCTL_MANIFEST_PATH=str(tmp_path / "manifests"),
               HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "envctl", "cache", "gc", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def blob(cache: Cache, data: bytes) -> str:
    """Put `data` into the cache as a verified blob, as a finished download leaves it."""
    sha256 = hashlib.sha256(data).hexdigest()
    staged = cache.root / "staged"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(data)
    cache.adopt(staged, sha256)
    return sha256


def manifest(tmp_path: Path, name: str, image: str, extra: str = "") -> Path:
    path = tmp_path / "manifests" / name / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: {name}\ndescription: gc test\ndevice: {{kind: cpu}}\nimage: {image}\n{extra}")
    return path


def test_a_tarball_pinned_by_sha256_is_kept_and_an_orphan_goes(tmp_path):
    cache = Cache(tmp_path / "cache")
    named = blob(cache, TARBALL)
    orphan = blob(cache, b"nobody names me")
    manifest(tmp_path, "pinned", f"{{ref: 'example/x:1', tarball: {{source: 'https://example.com/x.tar', sha256: {named}}}}}")
    done = gc(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"kept {named[:12]} (4.8 KiB): image tarball of pinned",
                                        "removed 1 item(s), freed 15 B"]
    assert cache.blob(named).read_bytes() == TARBALL and not cache.blob(orphan).exists()
    # A second gc keeps it again and removes nothing.
    assert gc(tmp_path).stdout.splitlines()[-1] == "removed 0 item(s), freed 0 B"


def test_once_no_manifest_names_the_tarball_gc_removes_it(tmp_path):
    cache = Cache(tmp_path / "cache")
    named = blob(cache, TARBALL)
    path = manifest(tmp_path, "pinned", f"{{ref: 'example/x:1', tarball: {{source: 'https://example.com/x.tar', sha256: {named}}}}}")
    assert cache.blob(named).exists() and gc(tmp_path).returncode == 0 and cache.blob(named).exists()
    path.write_text(path.read_text().replace(named, "f" * 64))  # the manifest moved to another tarball
    done = gc(tmp_path)
    assert done.stdout.splitlines() == [f"removed 1 item(s), freed {4.8:.1f} KiB"]
    assert not cache.blob(named).exists()


def test_a_tarball_pinned_by_the_lock_file_and_one_named_by_two_variants(tmp_path):
    cache = Cache(tmp_path / "cache")
    locked = blob(cache, TARBALL)
    small, large = blob(cache, b"7b image"), blob(cache, b"13b image")
    path = manifest(tmp_path, "locked", "{ref: 'example/x:1', tarball: {source: 'https://example.com/x.tar'}}")
    lockfile.write(path, {"https://example.com/x.tar": lockfile.Locked("https://example.com/x.tar", None,
                                                                          (PlacedFile("", len(TARBALL), locked),))})
    manifest(tmp_path, "sized", "{ref: 'example/x:1'}", f"""\
variants:
  7b: {{image: {{ref: 'example/x:7b', tarball: {{source: 'https://example.com/7b.tar', sha256: {small}}}}}}}
  13b: {{image: {{ref: 'example/x:13b', tarball: {{source: 'https://example.com/13b.tar', sha256: {large}}}}}}}
""")
    done = gc(tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()[:-1]) == sorted([
        f"kept {locked[:12]} (4.8 KiB): image tarball of locked",
        f"kept {small[:12]} (8 B): image tarball of sized:7b",
        f"kept {large[:12]} (9 B): image tarball of sized:13b",
    ])
    assert all(cache.blob(s).exists() for s in (locked, small, large))


def test_a_tarball_named_by_url_alone_is_kept_after_its_download(tmp_path, file_server):
    """No sha256 anywhere: the blob the URL gave (recorded when it was downloaded) is kept."""
    file_server.put("/images/x.tar", TARBALL)
    url = file_server.url_for("/images/x.tar")
    cache = Cache(tmp_path / "cache")
    source = parse_source(url, tmp_path)
    sha256, _ = Downloader(cache).fetch(RemoteFile("", url, source.display))
    cache.remember_source(source.identity(), sha256)  # as the image step does after a download
    other = blob(cache, b"another URL's bytes")
    manifest(tmp_path, "by-url", f"{{ref: 'example/x:1', tarball: {{source: '{url}'}}}}")
    done = gc(tmp_path)
    assert done.stdout.splitlines() == [f"kept {sha256[:12]} (4.8 KiB): image tarball of by-url",
                                        "removed 1 item(s), freed 19 B"]
    assert cache.blob(sha256).exists() and not cache.blob(other).exists()


def test_an_artifact_blob_whose_placed_copy_is_gone_is_kept_for_the_manifest(tmp_path):
    cache = Cache(tmp_path / "cache")
    weights = blob(cache, b"weights")
    manifest(tmp_path, "model", "{ref: 'example/x:1'}",
             f"artifacts:\n  weights: {{source: 'https://example.com/w.bin', sha256: {weights}, target: /w.bin}}\n")
    done = gc(tmp_path)
    assert done.stdout.splitlines() == [f"kept {weights[:12]} (7 B): artifact weights of model",
                                        "removed 0 item(s), freed 0 B"]


def test_a_manifest_that_cannot_be_read_is_named_and_the_rest_still_counts(tmp_path):
    cache = Cache(tmp_path / "cache")
    named = blob(cache, TARBALL)
    manifest(tmp_path, "pinned", f"{{ref: 'example/x:1', tarball: {{source: 'https://example.com/x.tar', sha256: {named}}}}}")
    broken = manifest(tmp_path, "broken", "{ref: 'example/x:1'}", "colour: blue\n")
    done = gc(tmp_path)
    assert done.returncode == 0
    assert f"note: manifest broken ({broken}:5:1: colour: unknown key 'colour'" in done.stderr
    assert "files only it names are not known to gc" in done.stderr
    assert cache.blob(named).exists()
