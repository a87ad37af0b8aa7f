"""`envctl cache ls | verify | gc` on a real cache filled by real fetches."""

import os
import subprocess
import sys

from envctl.artifacts.cache import Cache
from envctl.artifacts.fetch import fetch_all
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load


def run(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(ENVCTL_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env, timeout=60)


def filled(tmp_path):
    (tmp_path / "nas").mkdir()
    (tmp_path / "nas" / "a.bin").write_bytes(b"a" * 5000)
    (tmp_path / "nas" / "b.bin").write_bytes(b"b" * 7000)
    manifest = tmp_path / "m" / "manifest.yaml"
    manifest.parent.mkdir()
    manifest.write_text("name: cache-test\ndescription: x\ndevice: {kind: cpu}\nimage: {ref: x}\nartifacts:\n"
                        f"  a: {{source: {tmp_path / 'nas' / 'a.bin'}}}\n  b: {{source: {tmp_path / 'nas' / 'b.bin'}}}\n")
    loaded = load(manifest, environ={}, roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
    return fetch_all(loaded, Cache(tmp_path / "cache"))


def test_ls_lists_artifacts_and_sizes(tmp_path):
    filled(tmp_path)
    done = run(tmp_path, "cache", "ls")
    assert done.returncode == 0, done.stderr
    assert f"{tmp_path / 'nas' / 'a.bin'}" in done.stdout and f"{tmp_path / 'nas' / 'b.bin'}" in done.stdout
    assert done.stdout.splitlines()[-1] == f"2 artifact(s); 2 blob(s), 11.7 KiB in {tmp_path / 'cache'}"


def test_verify_finds_and_removes_corruption_so_the_next_fetch_repairs_it(tmp_path):
    fetched = {f.name: f for f in filled(tmp_path)}
    blob = Cache(tmp_path / "cache").blob(fetched["a"].files[0].sha256)
    blob.chmod(0o644)
    blob.write_bytes(b"bit rot")
    done = run(tmp_path, "cache", "verify")
    assert done.returncode == 6
    assert f"corrupt: {tmp_path / 'nas' / 'a.bin'}" in done.stdout and "2 file(s) checked, 1 corrupt" in done.stdout
    assert not fetched["a"].path.exists() and fetched["b"].path.exists()
    repaired = {f.name: f for f in filled_again(tmp_path)}
    assert repaired["a"].action == "fetched" and repaired["a"].path.read_bytes() == b"a" * 5000
    assert run(tmp_path, "cache", "verify").returncode == 0


def filled_again(tmp_path):
    loaded = load(tmp_path / "m" / "manifest.yaml", environ={}, roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
    return fetch_all(loaded, Cache(tmp_path / "cache"))


def test_gc_removes_only_what_nothing_uses(tmp_path):
    fetched = {f.name: f for f in filled(tmp_path)}
    cache = Cache(tmp_path / "cache")
    orphan = cache.blob("0" * 64)
    orphan.write_bytes(b"orphan")
    stale = cache.partial("http://example.com/old")
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    done = run(tmp_path, "cache", "gc")
    assert done.returncode == 0 and done.stdout.strip() == "removed 2 item(s), freed 10 B"
    assert not orphan.exists() and not stale.exists()
    assert fetched["a"].path.exists() and fetched["b"].path.exists()
