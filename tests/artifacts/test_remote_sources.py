"""HTTP(S), Hugging Face and FTP artifacts against real servers on loopback."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from envctl.artifacts.cache import Cache
from envctl.artifacts.download import FetchError
from envctl.artifacts.fetch import fetch_all
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
from servers.fixtures import file_server, ftp_server, hf_endpoint  # noqa: F401
from servers.hf_endpoint import HFEndpoint

MiB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(tmp_path: Path, artifacts: str) -> Path:
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("name: remote-test\ndescription: artifacts\ndevice: {kind: cpu}\nimage: {ref: x}\nartifacts:\n"
                    + textwrap.indent(textwrap.dedent(artifacts), "  "))
    return path


def fetch(tmp_path, artifacts: str, offline=False, use_lock=True):
    loaded = load(write_manifest(tmp_path, artifacts), environ=dict(os.environ),
                  roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path), use_lock=use_lock)
    return {f.name: f for f in fetch_all(loaded, Cache(tmp_path / "cache"), offline)}


def envctl(tmp_path, *args, env=None) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    environ.update(ENVCTL_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path / "home"), **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "envctl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=environ)


def serve(server, path: str, data: bytes) -> str:
    server.put(path, data)
    return server.url_for(path)


def partial_bytes(tmp_path) -> int:
    parts = list((tmp_path / "cache" / "partial").glob("*.part"))
    return parts[0].stat().st_size if parts else 0


def settle(read, quiet=0.5, timeout=30.0) -> None:
    """Wait until a server counter stops moving (a killed client's connection is torn down)."""
    deadline, last, since = time.monotonic() + timeout, read(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the counter kept moving"
        time.sleep(0.05)
        now = read()
        if now != last:
            last, since = now, time.monotonic()


def fetch_and_kill_halfway(tmp_path, manifest: Path, size: int, fetched_bytes) -> int:
    """Start `envctl fetch`, SIGKILL it once half the bytes are on disk; returns the bytes kept."""
    first = envctl(tmp_path, "fetch", str(manifest))
    wait_for(lambda: fetched_bytes(tmp_path) >= size // 2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = fetched_bytes(tmp_path)
    assert kept < size, "the first run finished before it was killed"
    return kept


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


# -- HTTP -----------------------------------------------------------------------------------

def test_a_warm_cache_sends_nothing_over_the_network(tmp_path, file_server):
    data = os.urandom(3 * MiB)
    url = serve(file_server, "/deepspeed_mlu-0.9.0-py3-none-any.whl", data)
    spec = f"wheel: {{source: '{url}', sha256: {sha(data)}, target: /opt/wheels/deepspeed_mlu-0.9.0-py3-none-any.whl}}\n"
    fetched = fetch(tmp_path, spec)
    assert fetched["wheel"].path.read_bytes() == data and fetched["wheel"].files[0].sha256 == sha(data)
    file_server.reset_counters()
    again = fetch(tmp_path, spec)
    assert again["wheel"].action == "cached"
    assert file_server.requests == 0 and file_server.bytes_sent == 0


def test_a_killed_fetch_resumes_without_fetching_bytes_again(tmp_path, file_server):
    data = os.urandom(8 * MiB)
    url = serve(file_server, "/model.safetensors", data)
    manifest = write_manifest(tmp_path, f"weights: {{source: '{url}', sha256: {sha(data)}}}\n")
    file_server.rate_per_connection = 4 * MiB
    kept = fetch_and_kill_halfway(tmp_path, manifest, len(data), partial_bytes)
    assert not list((tmp_path / "cache" / "artifacts").rglob("model.safetensors")), "a partial file was placed"
    file_server.rate_per_connection = None
    settle(lambda: file_server.bytes_sent)
    file_server.reset_counters()
    second = envctl(tmp_path, "fetch", str(manifest))
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    # Exactly the missing bytes: nothing already on disk was fetched again.
    assert file_server.bytes_sent == len(data) - kept
    assert file_server.ranges_requested("/model.safetensors")[-1] == f"bytes={kept}-"
    placed = Path(out.split("\t")[1].strip())
    assert placed.read_bytes() == data


def test_a_server_that_ignores_ranges_still_gives_a_whole_verified_file(tmp_path, file_server):
    data = os.urandom(2 * MiB)
    url = serve(file_server, "/a.bin", data)
    cache = Cache(tmp_path / "cache")
    part = cache.partial(f"{url}|{sha(data)}")
    part.write_bytes(data[: MiB // 2])  # left by an earlier run
    file_server.ignore_range = True
    fetched = fetch(tmp_path, f"a: {{source: '{url}', sha256: {sha(data)}}}\n")
    assert fetched["a"].path.read_bytes() == data


def test_a_truncated_response_is_resumed_not_accepted(tmp_path, file_server):
    data = os.urandom(3 * MiB)
    url = serve(file_server, "/b.bin", data)
    file_server.truncate_after, file_server.truncate_count = MiB, 1
    fetched = fetch(tmp_path, f"b: {{source: '{url}', sha256: {sha(data)}}}\n")
    assert fetched["b"].path.read_bytes() == data
    assert f"bytes={MiB}-" in file_server.ranges_requested("/b.bin")


def test_a_wrong_checksum_keeps_nothing_and_names_everything(tmp_path, file_server):
    data = os.urandom(MiB)
    url = serve(file_server, "/c.whl", data)
    wrong = "ab" * 32
    with pytest.raises(FetchError) as caught:
        fetch(tmp_path, f"c: {{source: '{url}', sha256: {wrong}}}\n")
    assert caught.value.message == (f"c: c.whl: sha256 {sha(data)} does not match the expected {wrong} "
                                    f"(source {url}); the download was discarded")
    assert not list((tmp_path / "cache" / "partial").glob("*.part"))
    assert not (tmp_path / "cache" / "blobs" / "sha256" / sha(data)).exists()


def test_a_large_file_is_fetched_over_several_connections(tmp_path, file_server):
    data = os.urandom(80 * MiB)
    url = serve(file_server, "/big.bin", data)
    fetched = fetch(tmp_path, f"big: {{source: '{url}', sha256: {sha(data)}}}\n")
    assert fetched["big"].path.read_bytes() == data
    ranges = [r for r in file_server.ranges_requested("/big.bin") if r]
    assert len(ranges) == 5 and "bytes=0-16777215" in ranges  # 80 MiB in 16 MiB segments


def test_two_processes_fetching_the_same_artifact_download_it_once(tmp_path, file_server):
    data = os.urandom(4 * MiB)
    url = serve(file_server, "/shared.bin", data)
    manifest = write_manifest(tmp_path, f"s: {{source: '{url}', sha256: {sha(data)}}}\n")
    file_server.rate_per_connection = 8 * MiB
    runs = [envctl(tmp_path, "fetch", str(manifest)) for _ in range(2)]
    results = [r.communicate(timeout=60) + (r.returncode,) for r in runs]
    assert [r[2] for r in results] == [0, 0], results
    assert file_server.bytes_sent == len(data)


def test_a_file_that_changed_upstream_is_not_spliced_onto_an_old_prefix(tmp_path, file_server):
    old, new = os.urandom(2 * MiB), os.urandom(2 * MiB)
    url = serve(file_server, "/moving.bin", new)
    cache = Cache(tmp_path / "cache")
    part = cache.partial(f"{url}|")
    part.write_bytes(old[:MiB])
    import json

    # The earlier run recorded the old file's ETag; the server now has another file.
    part.with_suffix(".json").write_text(json.dumps({"etag": f'"{sha(old)}"', "size": len(new), "mode": "stream"}))
    fetched = fetch(tmp_path, f"m: {{source: '{url}'}}\n")
    assert fetched["m"].path.read_bytes() == new


# -- Hugging Face ---------------------------------------------------------------------------

def hub_repo(endpoint: HFEndpoint, repo="THUDM/chatglm3-6b", **extra):
    files = {
        "config.json": b'{"model_type": "chatglm"}\n',
        "tokenizer.model": os.urandom(200_000),
        "pytorch_model-00001-of-00002.bin": os.urandom(2 * MiB),
        "pytorch_model-00002-of-00002.bin": os.urandom(2 * MiB),
        "modeling_chatglm.py": b"# remote code\n",
    }
    return files, endpoint.add_repo(repo, files=files, lfs=["tokenizer.model"], **extra)


def test_a_hub_repository_through_a_mirror_offering_xet_never_leaves_the_mirror(tmp_path, monkeypatch):
    with HFEndpoint(offer_xet=True) as endpoint:
        files, repo = hub_repo(endpoint)
        commit = next(iter(repo.commits))
        monkeypatch.setenv("HF_ENDPOINT", endpoint.url)
        fetched = fetch(tmp_path, f"m: {{source: 'hf://THUDM/chatglm3-6b@{commit[:12]}'}}\n")
        assert fetched["m"].revision == commit
        for name, data in files.items():
            assert (fetched["m"].path / name).read_bytes() == data
        assert endpoint.xet_requests == 0
        assert endpoint.bytes_sent == sum(len(d) for d in files.values())


def test_include_patterns_and_datasets(tmp_path, monkeypatch, hf_endpoint):
    hub_repo(hf_endpoint)
    hf_endpoint.add_repo("envctl/tiny-adgen", repo_type="dataset",
                         files={"AdvertiseGen/train.json": b"[]\n", "AdvertiseGen/dev.json": b"[]\n", "README.md": b"x"})
    monkeypatch.setenv("HF_ENDPOINT", hf_endpoint.url)
    fetched = fetch(tmp_path, """\
        code: {source: 'hf://THUDM/chatglm3-6b@main', include: ['*.py', '*.json']}
        data: {source: 'hf://datasets/envctl/tiny-adgen@main', subpath: AdvertiseGen}
    """)
    assert sorted(p.name for p in fetched["code"].path.iterdir()) == ["config.json", "modeling_chatglm.py"]
    assert sorted(p.relative_to(fetched["data"].path).as_posix() for p in fetched["data"].path.rglob("*.json")) == [
        "AdvertiseGen/dev.json", "AdvertiseGen/train.json"]


def test_a_private_repository_needs_the_token_which_is_never_printed(tmp_path, monkeypatch):
    with HFEndpoint(token="hf_privatetoken") as endpoint:
        hub_repo(endpoint)
        monkeypatch.setenv("HF_ENDPOINT", endpoint.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        with pytest.raises(FetchError) as caught:
            fetch(tmp_path, "m: {source: 'hf://THUDM/chatglm3-6b@main'}\n")
        assert caught.value.message == (f"m: hf://THUDM/chatglm3-6b@main (endpoint {endpoint.url}): "
                                        "no such repository (or it is private: set HF_TOKEN)")
        monkeypatch.setenv("HF_TOKEN", "hf_privatetoken")
        fetched = fetch(tmp_path, "m: {source: 'hf://THUDM/chatglm3-6b@main'}\n")
        assert (fetched["m"].path / "config.json").exists()


def test_lock_pins_the_commit_and_drift_is_refused(tmp_path, monkeypatch, hf_endpoint, file_server):
    _, repo = hub_repo(hf_endpoint)
    first = next(iter(repo.commits))
    wheel = os.urandom(MiB)
    url = serve(file_server, "/x.whl", wheel)
    monkeypatch.setenv("HF_ENDPOINT", hf_endpoint.url)
    manifest = write_manifest(tmp_path, f"""\
        m: {{source: 'hf://THUDM/chatglm3-6b@main'}}
        w: {{source: '{url}'}}
    """)
    locking = envctl(tmp_path, "lock", str(manifest), env={"HF_ENDPOINT": hf_endpoint.url})
    out, err = locking.communicate(timeout=120)
    assert locking.returncode == 0, err
    lock = (manifest.parent / "manifest.lock").read_text()
    assert f"revision: {first}" in lock and sha(wheel) in lock
    # Upstream moves on: main gets a new commit, the wheel is replaced.
    second = "1" * 40
    repo.commits[second] = {"config.json": b"{}\n"}
    repo.branches["main"] = second
    file_server.put("/x.whl", os.urandom(MiB))
    loaded = load(manifest, environ=dict(os.environ), roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
    assert loaded.sources["m"].revision == first  # the lock, not the moved branch
    cache = Cache(tmp_path / "cache2")
    with pytest.raises(FetchError) as caught:
        fetch_all(loaded, cache)
    # The lock's digest is the expected one: the replaced wheel is refused and not kept.
    assert caught.value.message.startswith("w: x.whl: sha256 ")
    assert f"does not match the expected {sha(wheel)} (source {url}); the download was discarded" in caught.value.message
    fetched = fetch_all(loaded, cache, names=["m"])
    assert fetched[0].revision == first


# -- FTP ------------------------------------------------------------------------------------

def test_ftp_with_netrc_credentials_resumes_with_rest(tmp_path, ftp_server):
    data = os.urandom(6 * MiB)
    (tmp_path / "ftp-root" / "docker").mkdir()
    (tmp_path / "ftp-root" / "docker" / "pytorch.tar.gz").write_bytes(data)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine 127.0.0.1 login user password secret\n")
    (home / ".netrc").chmod(0o600)
    url = f"ftp://127.0.0.1:{ftp_server.port}/docker/pytorch.tar.gz"
    manifest = write_manifest(tmp_path, f"image-tarball: {{source: '{url}', sha256: {sha(data)}}}\n")
    ftp_server.rate_per_connection = 2 * MiB
    kept = fetch_and_kill_halfway(tmp_path, manifest, len(data), partial_bytes)
    ftp_server.rate_per_connection = None
    second = envctl(tmp_path, "fetch", str(manifest))
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "secret" not in out + err
    assert ftp_server.retrievals[-1].offset == kept  # REST from the bytes on disk
    assert ftp_server.retrievals[-1].bytes == len(data) - kept
    assert Path(out.split("\t")[1].strip()).read_bytes() == data


def test_a_killed_segmented_download_resumes_inside_its_segments(tmp_path, file_server):
    import json

    data = os.urandom(80 * MiB)
    url = serve(file_server, "/shard.bin", data)
    manifest = write_manifest(tmp_path, f"shard: {{source: '{url}', sha256: {sha(data)}}}\n")
    file_server.rate_per_connection = 8 * MiB

    def recorded() -> int:
        metas = list((tmp_path / "cache" / "partial").glob("*.json"))
        if not metas:
            return 0
        try:
            meta = json.loads(metas[0].read_text())
        except ValueError:
            return 0
        return len(meta.get("segments", [])) * 16 * MiB + sum((meta.get("progress") or {}).values())

    kept = fetch_and_kill_halfway(tmp_path, manifest, len(data), lambda _: recorded())
    file_server.rate_per_connection = None
    settle(lambda: file_server.bytes_sent)
    file_server.reset_counters()
    second = envctl(tmp_path, "fetch", str(manifest))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    # What was recorded is not fetched again; at most the last unrecorded 4 MiB per connection is.
    assert len(data) - kept <= file_server.bytes_sent <= len(data) - kept + 4 * 4 * MiB
    assert any(r and not r.startswith(("bytes=0-", "bytes=16777216-", "bytes=33554432-", "bytes=50331648-", "bytes=67108864-"))
               for r in file_server.ranges_requested("/shard.bin")), "no request started inside a segment"
    assert Path(out.split("\t")[1].strip()).read_bytes() == data


# -- ModelScope -----------------------------------------------------------------------------

def test_a_modelscope_repository_is_fetched_and_verified_by_its_published_sha256(tmp_path, monkeypatch):
    from servers.modelscope_endpoint import ModelScopeEndpoint

    files = {"config.json": b"{}\n", "pytorch_model-00001-of-00002.bin": os.urandom(2 * MiB),
             "tokenizer/tokenizer.model": os.urandom(100_000)}
    with ModelScopeEndpoint(token="ms_token") as endpoint:
        endpoint.add_repo("ZhipuAI/chatglm3-6b", {"v1.0.0": files})
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", endpoint.url)
        monkeypatch.setenv("MODELSCOPE_API_TOKEN", "ms_token")
        fetched = fetch(tmp_path, "m: {source: 'modelscope://ZhipuAI/chatglm3-6b@v1.0.0'}\n")
        for name, data in files.items():
            assert (fetched["m"].path / name).read_bytes() == data
        assert {f.path: f.sha256 for f in fetched["m"].files} == {n: sha(d) for n, d in files.items()}
        with pytest.raises(FetchError) as caught:
            fetch(tmp_path, "m: {source: 'modelscope://ZhipuAI/chatglm3-6b@v9'}\n")
        assert caught.value.message == (f"m: modelscope://ZhipuAI/chatglm3-6b@v9 (endpoint {endpoint.url}): "
                                        "model ZhipuAI/chatglm3-6b revision v9 not found")


def test_a_moved_modelscope_tag_is_drift_and_says_what_changed(tmp_path, monkeypatch):
    from servers.modelscope_endpoint import ModelScopeEndpoint

    files = {"config.json": b'{"v": 1}\n', "model.bin": os.urandom(MiB)}
    with ModelScopeEndpoint() as endpoint:
        endpoint.add_repo("ZhipuAI/chatglm3-6b", {"master": files})
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", endpoint.url)
        manifest = write_manifest(tmp_path, "m: {source: 'modelscope://ZhipuAI/chatglm3-6b@master'}\n")
        locking = envctl(tmp_path, "lock", str(manifest), env={"MODELSCOPE_ENDPOINT": endpoint.url})
        _, err = locking.communicate(timeout=60)
        assert locking.returncode == 0, err
        endpoint.add_repo("ZhipuAI/chatglm3-6b", {"master": {**files, "config.json": b'{"v": 2}\n', "extra.py": b"#\n"}})
        loaded = load(manifest, environ=dict(os.environ), roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
        with pytest.raises(FetchError) as caught:
            fetch_all(loaded, Cache(tmp_path / "fresh-cache"))
        old, new = sha(b'{"v": 1}\n')[:12], sha(b'{"v": 2}\n')[:12]
        assert caught.value.message == f"m: differs from manifest.lock: added extra.py; changed config.json (sha256 {old} → {new})"
