"""Git, local-file and archive artifacts, fetched into a real cache from real repositories."""

import io
import json
import subprocess
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from envctl.artifacts.cache import Cache
from envctl.artifacts.download import FetchError
from envctl.artifacts.fetch import fetch_all
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]


def git(repo: Path, *args) -> str:
    return subprocess.run(GIT + list(args), cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> dict:
    """A repository with two commits, a tag on the first and a branch."""
    path = tmp_path / "upstream"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "tools").mkdir()
    (path / "tools" / "demo.py").write_text("print('first')\n")
    (path / "README").write_text("one\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "one")
    git(path, "tag", "v1")
    first = git(path, "rev-parse", "HEAD")
    (path / "README").write_text("two\n")
    git(path, "commit", "-qam", "two")
    second = git(path, "rev-parse", "HEAD")
    return {"path": path, "url": f"git+file://{path}", "first": first, "second": second}


def manifest(tmp_path: Path, artifacts: str) -> Path:
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("name: fetch-test\ndescription: artifacts\ndevice: {kind: cpu}\nimage: {ref: x}\nartifacts:\n"
                    + textwrap.indent(textwrap.dedent(artifacts), "  "))
    return path


def fetch(tmp_path, artifacts: str, offline=False):
    loaded = load(manifest(tmp_path, artifacts), environ={}, roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
    cache = Cache(tmp_path / "cache")
    return {f.name: f for f in fetch_all(loaded, cache, offline)}, cache


def test_a_short_sha_a_tag_and_a_full_sha_resolve_to_their_commits(tmp_path, repo):
    fetched, _ = fetch(tmp_path, f"""\
        short: {{source: "{repo['url']}@{repo['first'][:13]}"}}
        tag: {{source: "{repo['url']}@v1"}}
        full: {{source: "{repo['url']}@{repo['second']}"}}
        branch: {{source: "{repo['url']}@main"}}
    """)
    assert fetched["short"].revision == repo["first"] == fetched["tag"].revision
    assert fetched["full"].revision == repo["second"] == fetched["branch"].revision
    assert (fetched["short"].path / "README").read_text() == "one\n"
    assert (fetched["full"].path / "README").read_text() == "two\n"
    assert not (fetched["full"].path / ".git").exists()


def test_a_subpath_takes_only_that_directory(tmp_path, repo):
    fetched, _ = fetch(tmp_path, f"""\
        tools: {{source: "{repo['url']}@v1", subpath: tools}}
    """)
    tree = fetched["tools"].path
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*")) == ["tools", "tools/demo.py"]


def test_a_second_fetch_uses_the_cache(tmp_path, repo):
    spec = f"code: {{source: \"{repo['url']}@v1\"}}\n"
    first, _ = fetch(tmp_path, spec)
    assert first["code"].action == "fetched"
    second, _ = fetch(tmp_path, spec)
    assert second["code"].action == "cached" and second["code"].revision == repo["first"]


def test_unknown_refs_and_subpaths_are_named(tmp_path, repo):
    with pytest.raises(FetchError) as caught:
        fetch(tmp_path, f"code: {{source: \"{repo['url']}@v9\"}}\n")
    assert "code: git+file://" in caught.value.message and "@v9: no such commit, tag or branch" in caught.value.message
    with pytest.raises(FetchError) as caught:
        fetch(tmp_path, f"code: {{source: \"{repo['url']}@v1\", subpath: nope}}\n")
    assert f"subpath 'nope' does not exist at commit {repo['first']}" in caught.value.message


def test_offline_uses_the_cache_and_names_what_is_missing(tmp_path, repo):
    with pytest.raises(FetchError) as caught:
        fetch(tmp_path, f"code: {{source: \"{repo['url']}@v1\"}}\n", offline=True)
    assert caught.value.message == f"code: not in the cache ({repo['url']}@v1) and --offline was given"
    fetch(tmp_path, f"code: {{source: \"{repo['url']}@v1\"}}\n")
    fetched, _ = fetch(tmp_path, f"code: {{source: \"{repo['url']}@v1\"}}\n", offline=True)
    assert fetched["code"].action == "cached"


def test_a_local_file_is_copied_verified_and_never_linked_to_the_original(tmp_path):
    original = tmp_path / "nas" / "weights.bin"
    original.parent.mkdir()
    original.write_bytes(b"weights" * 1000)
    import hashlib

    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    fetched, cache = fetch(tmp_path, f"w: {{source: {original}, sha256: {digest}}}\n")
    assert fetched["w"].path.read_bytes() == original.read_bytes()
    assert fetched["w"].path.stat().st_ino != original.stat().st_ino
    assert cache.blob(digest).is_file()
    wrong = "ab" * 32
    with pytest.raises(FetchError) as caught:
        fetch(tmp_path, f"w2: {{source: {original}, sha256: {wrong}}}\n")
    assert f"sha256 {digest} does not match the expected {wrong}" in caught.value.message


def test_a_cached_directory_with_a_file_deleted_or_cut_short_is_fetched_again(tmp_path):
    """The cache damaged by hand: a placed file deleted, or truncated (and with it its blob, a
    hard link of it). The entry no longer counts as cached and the next fetch restores it."""
    source = tmp_path / "data"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "x.txt").write_text("x\n")
    (source / "y.txt").write_text("y\n")
    fetched, cache = fetch(tmp_path, f"d: {{source: {source}}}\n")
    placed = fetched["d"].path
    assert fetched["d"].action == "fetched"
    assert fetch(tmp_path, f"d: {{source: {source}}}\n")[0]["d"].action == "cached"

    (placed / "sub" / "x.txt").unlink()
    again, _ = fetch(tmp_path, f"d: {{source: {source}}}\n")
    assert again["d"].action == "fetched" and (again["d"].path / "sub" / "x.txt").read_text() == "x\n"

    y = again["d"].path / "y.txt"
    y.chmod(0o644)
    y.write_bytes(b"")  # truncated in place: the blob shrinks with it
    again, _ = fetch(tmp_path, f"d: {{source: {source}}}\n")
    assert again["d"].action == "fetched" and (again["d"].path / "y.txt").read_text() == "y\n"
    assert fetch(tmp_path, f"d: {{source: {source}}}\n")[0]["d"].action == "cached"


@pytest.mark.parametrize("change", ["same size, new bytes", "a byte more", "a file added", "a file removed"])
def test_a_local_source_changed_since_its_copy_is_copied_again(tmp_path, change):
    """A local path is what the user edits (code, a NAS copy of weights): the cached copy stands
    for what the path held when it was copied, and once the path holds something else (its files'
    size, mtime or inode differ, one added or removed) the next fetch copies it again."""
    source = tmp_path / "code"
    source.mkdir()
    (source / "train.py").write_text("print('one')\n")
    (source / "old.py").write_text("x\n")
    single = tmp_path / "weights.bin"
    single.write_bytes(b"a" * 4096)
    artifacts = f"code: {{source: {source}}}\nweights: {{source: {single}}}\n"
    assert {f.action for f in fetch(tmp_path, artifacts)[0].values()} == {"fetched"}
    assert {f.action for f in fetch(tmp_path, artifacts)[0].values()} == {"cached"}
    if change == "same size, new bytes":
        (source / "train.py").write_text("print('two')\n")
        single.write_bytes(b"b" * 4096)
    elif change == "a byte more":
        (source / "train.py").write_text("print('one!')\n")
        single.write_bytes(b"a" * 4097)
    elif change == "a file added":
        (source / "new.py").write_text("y\n")
        single.unlink()
        single.write_bytes(b"a" * 4096)  # the same bytes in a new file (another inode)
    else:
        (source / "old.py").unlink()
        single.touch()
    again, _ = fetch(tmp_path, artifacts)
    assert {f.action for f in again.values()} == {"fetched"}
    copied = sorted(p.name for p in again["code"].path.iterdir())
    assert copied == sorted(p.name for p in source.iterdir())
    assert (again["code"].path / "train.py").read_text() == (source / "train.py").read_text()
    assert again["weights"].path.read_bytes() == single.read_bytes()
    assert {f.action for f in fetch(tmp_path, artifacts)[0].values()} == {"cached"}


def _tar(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def test_archives_are_extracted_by_content_not_by_name(tmp_path):
    data = tmp_path / "AdvertiseGen-download"  # no extension, like ...?dl=1
    data.write_bytes(_tar({"AdvertiseGen/train.json": b"{}\n", "AdvertiseGen/dev.json": b"{}\n"}))
    zipped = tmp_path / "data.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("ToolAlpaca/data/train_data.json", "[]")
    fetched, _ = fetch(tmp_path, f"""\
        adgen: {{source: {data}, extract: true}}
        tools: {{source: {zipped}, extract: true}}
    """)
    assert (fetched["adgen"].path / "AdvertiseGen" / "train.json").read_text() == "{}\n"
    assert (fetched["tools"].path / "ToolAlpaca" / "data" / "train_data.json").read_text() == "[]"


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_an_extracted_archive_is_cached_and_fetched_again_when_its_tree_is_damaged(tmp_path, kind):
    """An extracted entry's record lists the archive as fetched (`files`, what a pin refers to)
    and the tree it placed (`tree`): the entry is cached while every file of the tree is there
    with its size (it was fetched anew on every run when the check looked for the archive)."""
    archive = tmp_path / f"acc.{kind}"
    entries = {"acc/setup.py": b"setup\n", "acc/src/accelerate/accelerator.py": b"accel\n"}
    if kind == "tar":
        archive.write_bytes(_tar(entries))  # no directory entries, as the vendor's tarball
    else:
        with zipfile.ZipFile(archive, "w") as zipped:
            for name, data in entries.items():
                zipped.writestr(name, data)
    spec = f"acc: {{source: {archive}, extract: true}}\n"
    fetched, cache = fetch(tmp_path, spec)
    record = json.loads(fetched["acc"].path.with_name(fetched["acc"].path.name + ".json").read_text())
    assert [f["size"] for f in record["files"]] == [archive.stat().st_size]  # the archive, as pinned
    assert [(f["path"], f["size"]) for f in record["tree"]] == [("acc/setup.py", 6), ("acc/src/accelerate/accelerator.py", 6)]
    assert fetch(tmp_path, spec)[0]["acc"].action == "cached"

    target = fetched["acc"].path / "acc" / "src" / "accelerate" / "accelerator.py"
    target.parent.chmod(0o755)
    target.unlink()
    again, _ = fetch(tmp_path, spec)
    assert again["acc"].action == "fetched" and target.read_bytes() == b"accel\n"
    setup = again["acc"].path / "acc" / "setup.py"
    setup.chmod(0o644)
    setup.write_bytes(b"")
    assert fetch(tmp_path, spec)[0]["acc"].action == "fetched" and setup.read_bytes() == b"setup\n"
    assert fetch(tmp_path, spec)[0]["acc"].action == "cached"


@pytest.mark.parametrize("entries, links, message", [
    ({"../escape.txt": b"x"}, None, "entry '../escape.txt' would land outside the target"),
    ({"/etc/evil": b"x"}, None, "entry '/etc/evil' would land outside the target"),
    ({"ok.txt": b"x"}, {"link": "../../outside"}, "link 'link' → '../../outside' points outside the target"),
    ({"ok.txt": b"x"}, {"abs": "/etc/passwd"}, "link 'abs' → '/etc/passwd' points outside the target"),
])
def test_archives_never_extract_outside_their_target(tmp_path, entries, links, message):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_tar(entries, links))
    with pytest.raises(FetchError) as caught:
        fetch(tmp_path, f"bad: {{source: {bad}, extract: true}}\n")
    assert message in caught.value.message
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path.parent / "escape.txt").exists()
    assert not list((tmp_path / "cache" / "artifacts").rglob("ok.txt"))
