"""A cache entry is the whole source: URLs that differ in any part that selects the resource
(host, port, path, query) never share an entry, and a record that does not state the source it
stands for is never used. Real fetches through the CLI against loopback servers."""

from __future__ import annotations

import json
import os

from download_helpers import envctl, placed, sha, write_manifest
from servers.fixtures import file_server  # noqa: F401
from servers.http_files import FileServer

from envctl.artifacts.cache import Cache

MiB = 1 << 20
SHARE = "/d/f1e2d3c4b5a6/files/"  # a Seafile share link's folder (its token in the path)


def test_share_links_that_differ_only_in_the_query_are_different_artifacts(tmp_path, file_server):
    shards = {f"pytorch_model-0000{i}-of-00007.bin": os.urandom(MiB + i) for i in (1, 2)}
    file_server.share(SHARE, shards)
    names = list(shards)
    manifest = write_manifest(tmp_path, f"""\
        shard1: {{source: "{file_server.share_url(SHARE, names[0])}"}}
        shard2: {{source: "{file_server.share_url(SHARE, names[1])}"}}
    """)
    assert "?p=%2Fpytorch_model-00001-of-00007.bin&dl=1" in manifest.read_text()  # as share pages hand them out
    first = envctl(tmp_path, "fetch", str(manifest))
    assert first.returncode == 0, first.stderr
    paths = placed(first.stdout)
    assert paths["shard1"] != paths["shard2"]
    assert paths["shard1"].read_bytes() == shards[names[0]] and paths["shard2"].read_bytes() == shards[names[1]]
    # The placed file is named after the shared file, not after the share's folder.
    assert paths["shard1"].name == names[0] and paths["shard2"].name == names[1]
    again = envctl(tmp_path, "fetch", str(manifest))
    assert again.returncode == 0, again.stderr
    assert "artifact   shard1: cached" in again.stderr and "artifact   shard2: cached" in again.stderr
    assert {n: p.read_bytes() for n, p in placed(again.stdout).items()} == {"shard1": shards[names[0]],
                                                                          "shard2": shards[names[1]]}


def test_the_same_path_on_another_server_or_port_is_another_artifact(tmp_path, file_server):
    ours, theirs = os.urandom(MiB), os.urandom(MiB)
    file_server.put("/models/weights.bin", ours)
    with FileServer(files={"/models/weights.bin": theirs}) as mirror:  # same host, another port
        manifest = write_manifest(tmp_path, f"""\
            ours: {{source: "{file_server.url_for('/models/weights.bin')}"}}
            mirror: {{source: "{mirror.url_for('/models/weights.bin')}"}}
            by_name: {{source: "{file_server.url_for('/models/weights.bin').replace('127.0.0.1', 'localhost')}"}}
        """)
        done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 0, done.stderr
    paths = placed(done.stdout)
    assert paths["ours"].read_bytes() == ours and paths["mirror"].read_bytes() == theirs
    assert paths["by_name"].read_bytes() == ours and paths["by_name"] != paths["ours"]  # another host name


def test_fragments_and_equivalent_escapes_name_one_artifact_and_fetch_it_once(tmp_path, file_server):
    data = os.urandom(MiB)
    file_server.share(SHARE, {"tokenizer.model": data})
    url = file_server.share_url(SHARE, "tokenizer.model")  # ...?p=%2Ftokenizer.model&dl=1
    variants = {
        "plain": url,
        "fragment": url + "#section-2",
        "lower_hex": url.replace("%2F", "%2f"),
        "escaped_unreserved": url.replace("tokenizer.model", "tokenizer%2Emodel"),
        "default_port_host_case": url.replace("http://127.0.0.1", "HTTP://127.0.0.1"),
    }
    manifest = write_manifest(tmp_path, "".join(f'{n}: {{source: "{u}"}}\n' for n, u in variants.items()))
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 0, done.stderr
    paths = placed(done.stdout)
    assert len(set(paths.values())) == 1 and next(iter(paths.values())).read_bytes() == data
    assert file_server.bytes_by_path[SHARE] == len(data)  # one download for all five


def test_a_record_that_does_not_state_its_source_is_not_used(tmp_path, file_server):
    right, wrong = os.urandom(MiB), os.urandom(MiB)
    file_server.share(SHARE, {"a.bin": right})
    manifest = write_manifest(tmp_path, f'a: {{source: "{file_server.share_url(SHARE, "a.bin")}"}}\n')
    first = envctl(tmp_path, "fetch", str(manifest))
    assert first.returncode == 0, first.stderr
    path = placed(first.stdout)["a"]
    record_file = path.with_name(path.name + ".json")
    record = json.loads(record_file.read_text())
    assert record["source"] == file_server.share_url(SHARE, "a.bin")
    # Another source's bytes and record under this key (an older envctl's shared key did this):
    cache = Cache(tmp_path / "cache")
    blob = cache.blob(sha(wrong))
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(wrong)
    path.unlink()
    os.link(blob, path)
    for forged in ({**record, "identity": record["identity"].replace("a.bin", "b.bin")},
                   {k: v for k, v in record.items() if k != "identity"}):
        forged["files"] = [{"path": "", "size": len(wrong), "sha256": sha(wrong)}]
        record_file.write_text(json.dumps(forged))
        again = envctl(tmp_path, "fetch", str(manifest))
        assert again.returncode == 0, again.stderr
        assert "artifact   a: fetched" in again.stderr
        assert placed(again.stdout)["a"].read_bytes() == right
        path = placed(again.stdout)["a"]
        path.unlink()
        os.link(blob, path)


def test_cache_ls_shows_each_share_link_as_its_own_artifact(tmp_path, file_server):
    file_server.share(SHARE, {"x.bin": b"x" * 1000, "y.bin": b"y" * 2000})
    manifest = write_manifest(tmp_path, f"""\
        x: {{source: "{file_server.share_url(SHARE, 'x.bin')}"}}
        y: {{source: "{file_server.share_url(SHARE, 'y.bin')}"}}
    """)
    assert envctl(tmp_path, "fetch", str(manifest)).returncode == 0
    listed = envctl(tmp_path, "cache", "ls")
    assert listed.returncode == 0, listed.stderr
    assert file_server.share_url(SHARE, "x.bin") in listed.stdout and file_server.share_url(SHARE, "y.bin") in listed.stdout
    assert listed.stdout.splitlines()[-1].startswith("2 artifact(s); 2 blob(s)")
