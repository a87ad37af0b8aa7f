"""The loopback servers do what their docstrings promise, seen through real clients: requests,
http.client, ftplib and huggingface_hub. No assertion is about elapsed time."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
from http.client import HTTPConnection, IncompleteRead
from pathlib import Path

import pytest
import requests

from servers.fixtures import file_server, ftp_server, hf_endpoint  # noqa: F401  (pytest fixtures)
from servers.ftp import FTPServer, Retrieval
from servers.hf_endpoint import HFEndpoint, fake_sha, git_blob_oid
from servers.http_files import FileServer, Hit

BODY = bytes(range(256)) * 40  # 10 KiB, every offset distinguishable
ETAG = f'"{hashlib.sha256(BODY).hexdigest()}"'


@pytest.fixture
def web():
    # trust_env=False: a proxy variable in the developer's environment must not reroute loopback.
    with requests.Session() as session:
        session.trust_env = False
        yield session


# -- FileServer ---------------------------------------------------------------------------


def test_full_get_and_head(file_server, web):
    file_server.put("/f.bin", BODY)
    r = web.get(file_server.url_for("f.bin"))
    assert r.status_code == 200 and r.content == BODY
    assert r.headers["Content-Length"] == str(len(BODY))
    assert r.headers["ETag"] == ETAG and r.headers["Accept-Ranges"] == "bytes"

    h = web.head(file_server.url_for("f.bin"))
    assert h.status_code == 200 and h.content == b"" and h.headers["Content-Length"] == str(len(BODY))
    assert file_server.bytes_sent == len(BODY)  # HEAD sends no body
    assert file_server.requests == 2
    assert file_server.hits == [Hit("/f.bin", None, "GET"), Hit("/f.bin", None, "HEAD")]
    assert web.get(file_server.url_for("missing")).status_code == 404


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=10-19", 10, 19),
        ("bytes=10000-", 10000, len(BODY) - 1),
        ("bytes=-24", len(BODY) - 24, len(BODY) - 1),
        ("bytes=100-999999", 100, len(BODY) - 1),
    ],
)
def test_ranges(file_server, web, header, start, end):
    file_server.put("/f.bin", BODY)
    r = web.get(file_server.url_for("f.bin"), headers={"Range": header})
    assert r.status_code == 206
    assert r.content == BODY[start : end + 1]
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
    assert file_server.ranges_requested("/f.bin") == [header]


def test_unsatisfiable_and_ignored_ranges(file_server, web):
    file_server.put("/f.bin", BODY)
    r = web.get(file_server.url_for("f.bin"), headers={"Range": f"bytes={len(BODY)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(BODY)}"
    r = web.get(file_server.url_for("f.bin"), headers={"Range": "bytes=0-1,5-6"})  # multi-range: ignored
    assert r.status_code == 200 and r.content == BODY


def test_if_range_matching_etag_gives_206_and_stale_etag_gives_whole_new_file(file_server, web):
    file_server.put("/f.bin", BODY)
    r = web.get(file_server.url_for("f.bin"), headers={"Range": "bytes=5-", "If-Range": ETAG})
    assert r.status_code == 206 and r.content == BODY[5:]

    changed = BODY[::-1]
    file_server.put("/f.bin", changed)  # the upstream file changed between attempts
    r = web.get(file_server.url_for("f.bin"), headers={"Range": "bytes=5-", "If-Range": ETAG})
    assert r.status_code == 200 and r.content == changed
    assert r.headers["ETag"] == f'"{hashlib.sha256(changed).hexdigest()}"'


def test_ignore_range(file_server, web):
    file_server.put("/f.bin", BODY)
    file_server.ignore_range = True
    r = web.get(file_server.url_for("f.bin"), headers={"Range": "bytes=5-"})
    assert r.status_code == 200 and r.content == BODY
    assert "Accept-Ranges" not in r.headers and "Content-Range" not in r.headers


def test_truncate_after_gives_a_short_read_then_resume_completes(file_server):
    file_server.put("/f.bin", BODY)
    file_server.truncate_after = 1000
    file_server.truncate_count = 1
    conn = HTTPConnection("127.0.0.1", file_server.port, timeout=10)
    conn.request("GET", "/f.bin")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == str(len(BODY))
    with pytest.raises(IncompleteRead) as short:
        resp.read()
    conn.close()
    assert short.value.partial == BODY[:1000]
    assert file_server.bytes_sent == 1000

    # Only one response was to be cut: the resume gets the rest, and nothing was sent twice.
    r = requests.get(file_server.url_for("f.bin"), headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == BODY[1000:]
    assert file_server.bytes_sent == len(BODY)
    assert file_server.ranges_requested("/f.bin") == [None, "bytes=1000-"]


def test_truncation_seen_by_requests_as_a_broken_connection(file_server, web):
    file_server.put("/f.bin", BODY)
    file_server.truncate_after = 10
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        web.get(file_server.url_for("f.bin"))


def test_throttle_is_observable_as_partial_progress(file_server):
    big = os.urandom(1024 * 1024)
    file_server.put("/big.bin", big)
    file_server.rate_per_connection = 20 * 1024
    conn = HTTPConnection("127.0.0.1", file_server.port, timeout=10)
    conn.request("GET", "/big.bin")
    resp = conn.getresponse()
    first = resp.read(1024)
    # Unpaced, the whole megabyte lands in loopback socket buffers at once; paced at 20 KiB/s
    # the server has handed over only a sliver when the first bytes arrive.
    assert first == big[:1024]
    assert file_server.bytes_sent < len(big) // 2
    conn.close()  # the paced writer notices the hang-up on its next write


def test_fail_after_requests(file_server, web):
    file_server.put("/f.bin", BODY)
    file_server.fail_after_requests = 2
    statuses = [web.get(file_server.url_for("f.bin")).status_code for _ in range(4)]
    assert statuses == [200, 200, 503, 503]


def test_basic_auth(file_server, web):
    file_server.put("/f.bin", BODY)
    file_server.require_auth = ("alice", "pw")
    r = web.get(file_server.url_for("f.bin"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert web.get(file_server.url_for("f.bin"), auth=("alice", "wrong")).status_code == 401
    r = web.get(file_server.url_for("f.bin"), auth=("alice", "pw"))
    assert r.status_code == 200 and r.content == BODY


def test_redirects(file_server, web):
    file_server.put("/b.bin", BODY)
    file_server.redirects["/a.bin"] = "/b.bin"
    r = web.get(file_server.url_for("a.bin"), allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/b.bin"
    r = web.get(file_server.url_for("a.bin"))
    assert r.content == BODY and [h.path for h in file_server.hits] == ["/a.bin", "/a.bin", "/b.bin"]


def test_root_directory_and_no_escape(tmp_path, web):
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "sub").mkdir()
    (tmp_path / "pub" / "sub" / "x.txt").write_bytes(b"hello")
    (tmp_path / "secret").write_bytes(b"no")
    with FileServer(root=tmp_path / "pub") as server:
        assert web.get(server.url_for("sub/x.txt")).content == b"hello"
        conn = http_client(server)
        conn.request("GET", "/../secret")
        assert conn.getresponse().status == 404
        conn.close()


def test_stop_is_bounded_with_open_keepalive_and_paced_responses(web):
    server = FileServer(files={"/f.bin": os.urandom(512 * 1024)}, rate_per_connection=4096).start()
    web.get(server.url_for("missing"))  # leaves an idle keep-alive connection open
    conn = http_client(server)
    conn.request("GET", "/f.bin")
    conn.getresponse().read(10)  # a paced response in flight
    server.stop()  # raises if any connection thread survived
    conn.close()


def http_client(server) -> HTTPConnection:
    return HTTPConnection("127.0.0.1", server.port, timeout=10)


# -- HFEndpoint ---------------------------------------------------------------------------

SHA = fake_sha("commit-1")
OLD = fake_sha("commit-0")
WEIGHTS = os.urandom(64 * 1024)
CONFIG = b'{"model_type": "tiny"}'
FILES = {
    "config.json": CONFIG,
    "model.safetensors": WEIGHTS,
    "tokenizer/vocab.txt": b"a\nb\n",
    "tokenizer/extra/merges.txt": b"a b\n",
}


@pytest.fixture
def hub(hf_endpoint):
    hf_endpoint.add_repo(
        "org/tiny",
        revision_sha=SHA,
        files=FILES,
        commits={OLD: {"config.json": b"{}"}},
        branches={"main": SHA, "old": OLD},
        tags={"v1": OLD},
        lfs=["model.safetensors"],
    )
    hf_endpoint.add_repo("org/data", repo_type="dataset", files={"train.jsonl": b'{"x": 1}\n'})
    return hf_endpoint


@pytest.fixture
def hf_api(hub):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=False)


@pytest.fixture
def no_xet(monkeypatch):
    """HF_HUB_DISABLE_XET=1 as a mirror user sets it; the library reads it at import, hence both."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


def test_hf_list_repo_tree_follows_pagination(hub, hf_api, web):
    hub.tree_page_size = 2
    entries = list(hf_api.list_repo_tree("org/tiny", revision="main", recursive=True))
    files = {e.path: e for e in entries if hasattr(e, "size")}
    dirs = sorted(e.path for e in entries if not hasattr(e, "size"))
    assert sorted(files) == sorted(FILES) and dirs == ["tokenizer", "tokenizer/extra"]
    assert files["model.safetensors"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert files["model.safetensors"].lfs.size == len(WEIGHTS)
    assert files["config.json"].lfs is None and files["config.json"].blob_id == git_blob_oid(CONFIG)
    assert [h.path for h in hub.hits].count("/api/models/org/tiny/tree/main") == 3  # 6 entries, 2 a page

    r = web.get(f"{hub.url}/api/models/org/tiny/tree/main", params={"recursive": "true"})
    assert len(r.json()) == 2 and 'rel="next"' in r.headers["Link"] and "cursor=" in r.links["next"]["url"]


def test_hf_tree_entry_shape_subpaths_and_expand(hub, web):
    r = web.get(f"{hub.url}/api/models/org/tiny/tree/{SHA}")
    top = {e["path"]: e for e in r.json()}
    assert set(top) == {"config.json", "model.safetensors", "tokenizer"}  # not recursive
    assert top["tokenizer"]["type"] == "directory"
    lfs = top["model.safetensors"]
    assert lfs["type"] == "file" and lfs["size"] == len(WEIGHTS)
    assert lfs["lfs"]["oid"] == hashlib.sha256(WEIGHTS).hexdigest() and lfs["lfs"]["size"] == len(WEIGHTS)
    assert lfs["lfs"]["pointerSize"] > 0 and len(lfs["oid"]) == 40 and "xetHash" not in lfs
    assert "lfs" not in top["config.json"] and top["config.json"]["oid"] == git_blob_oid(CONFIG)

    sub = web.get(
        f"{hub.url}/api/models/org/tiny/tree/main/tokenizer%2Fextra", params={"expand": "true"}
    ).json()
    assert [e["path"] for e in sub] == ["tokenizer/extra/merges.txt"] and sub[0]["lastCommit"]["id"] == SHA
    missing = web.get(f"{hub.url}/api/models/org/tiny/tree/main/nope")
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"


def test_hf_repo_info_resolves_branches_tags_and_short_shas(hub, hf_api):
    assert hf_api.repo_info("org/tiny").sha == SHA
    assert hf_api.repo_info("org/tiny", revision="old").sha == OLD
    assert hf_api.repo_info("org/tiny", revision="v1").sha == OLD
    assert hf_api.repo_info("org/tiny", revision=SHA[:7]).sha == SHA
    assert hf_api.repo_info("org/tiny", revision=OLD).sha == OLD
    info = hf_api.model_info("org/tiny", revision=SHA[:10], files_metadata=True)
    assert info.id == "org/tiny" and sorted(s.rfilename for s in info.siblings) == sorted(FILES)
    weights = next(s for s in info.siblings if s.rfilename == "model.safetensors")
    assert weights.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest() and weights.size == len(WEIGHTS)
    assert hf_api.repo_info("org/data", repo_type="dataset").id == "org/data"
    assert [b.target_commit for b in hf_api.list_repo_refs("org/tiny").branches] == [SHA, OLD]

    # An upstream push: a new commit, and main moves to it while the server runs.
    new = fake_sha("commit-2")
    repo = hub.repos[("model", "org/tiny")]
    repo.commits[new] = {"config.json": b"{}"}
    repo.branches["main"] = new
    assert hf_api.repo_info("org/tiny").sha == new and hf_api.repo_info("org/tiny", revision=SHA).sha == SHA


def test_hf_paths_info(hub, hf_api):
    infos = hf_api.get_paths_info("org/tiny", ["model.safetensors", "tokenizer", "nope"], revision="main")
    assert [i.path for i in infos] == ["model.safetensors", "tokenizer"]
    assert infos[0].lfs.size == len(WEIGHTS)


def test_hf_errors_carry_the_hub_error_codes(hub, hf_api, web, tmp_path):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    with pytest.raises(RepositoryNotFoundError):
        hf_api.repo_info("org/none")
    with pytest.raises(RevisionNotFoundError):
        hf_api.repo_info("org/tiny", revision="nobranch")
    with pytest.raises(RevisionNotFoundError):
        hf_api.repo_info("org/tiny", revision=SHA[:5])  # shorter than the accepted prefix
    with pytest.raises(RepositoryNotFoundError):
        hf_api.repo_info("org/tiny", repo_type="dataset")
    r = web.head(f"{hub.url}/org/tiny/resolve/main/nope.bin")
    assert (
        r.status_code == 404
        and r.headers["X-Error-Code"] == "EntryNotFound"
        and r.headers["X-Repo-Commit"] == SHA
    )
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/tiny", "nope.bin", endpoint=hub.url, token=False, cache_dir=tmp_path)
    r = web.get(f"{hub.url}/api/models/org/tiny/revision/zzz")
    assert r.status_code == 404 and r.json() == {"error": "Invalid rev id: zzz"}


def test_hf_resolve_headers_and_ranges(hub, web):
    lfs = web.head(f"{hub.url}/org/tiny/resolve/main/model.safetensors")
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    assert lfs.status_code == 200 and lfs.headers["X-Repo-Commit"] == SHA
    assert lfs.headers["ETag"] == f'"{sha256}"' and lfs.headers["X-Linked-Etag"] == f'"{sha256}"'
    assert lfs.headers["X-Linked-Size"] == str(len(WEIGHTS)) and "X-Xet-Hash" not in lfs.headers
    small = web.head(f"{hub.url}/org/tiny/resolve/{SHA[:8]}/tokenizer/vocab.txt")
    vocab_oid = git_blob_oid(FILES["tokenizer/vocab.txt"])
    assert small.headers["ETag"] == f'"{vocab_oid}"' and "X-Linked-Etag" not in small.headers

    r = web.get(f"{hub.url}/org/tiny/resolve/main/model.safetensors", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == WEIGHTS[100:200]
    assert hub.bytes_sent == 100  # file bytes only; the API's JSON is never counted
    data = web.get(f"{hub.url}/datasets/org/data/resolve/main/train.jsonl")
    assert data.content == b'{"x": 1}\n' and data.headers["X-Repo-Commit"] == fake_sha("dataset:org/data")


def test_hf_hub_download_and_snapshot_download(hub, no_xet, tmp_path):
    from huggingface_hub import hf_hub_download, snapshot_download

    path = hf_hub_download(
        "org/tiny", "model.safetensors", revision="main", endpoint=hub.url, token=False, cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == WEIGHTS and f"/snapshots/{SHA}/" in path
    old = hf_hub_download(
        "org/tiny", "config.json", revision="v1", endpoint=hub.url, token=False, cache_dir=tmp_path
    )
    assert Path(old).read_bytes() == b"{}"

    folder = snapshot_download(
        "org/tiny", revision=SHA[:7], endpoint=hub.url, token=False, cache_dir=tmp_path
    )
    assert Path(folder, "tokenizer", "extra", "merges.txt").read_bytes() == b"a b\n"
    ds = snapshot_download(
        "org/data", repo_type="dataset", endpoint=hub.url, token=False, local_dir=tmp_path / "ds"
    )
    assert Path(ds, "train.jsonl").read_bytes() == b'{"x": 1}\n'
    assert hub.xet_requests == 0


def test_hf_token_required(hub, no_xet, tmp_path, web):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    hub.token = "hf_testtoken"
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=False).repo_info("org/tiny")
    with pytest.raises(HfHubHTTPError) as wrong:
        HfApi(endpoint=hub.url, token="hf_wrong").repo_info("org/tiny")
    assert wrong.value.response.status_code == 401
    assert web.get(f"{hub.url}/org/tiny/resolve/main/config.json").status_code == 401
    assert HfApi(endpoint=hub.url, token="hf_testtoken").repo_info("org/tiny").sha == SHA
    path = hf_hub_download(
        "org/tiny", "config.json", endpoint=hub.url, token="hf_testtoken", cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == CONFIG


def test_hf_offers_xet_but_a_mirror_download_never_touches_it(hub, no_xet, tmp_path, web):
    hub.offer_xet = True
    head = web.head(f"{hub.url}/org/tiny/resolve/main/model.safetensors")
    assert len(head.headers["X-Xet-Hash"]) == 64
    assert head.links["xet-auth"]["url"] == head.headers["X-Xet-Refresh-Route"]
    assert "xet-reconstruction-info" in head.links
    tree = web.get(f"{hub.url}/api/models/org/tiny/tree/main").json()
    assert {e["path"]: e.get("xetHash") for e in tree}["model.safetensors"] == head.headers["X-Xet-Hash"]

    from huggingface_hub import hf_hub_download

    path = hf_hub_download("org/tiny", "model.safetensors", endpoint=hub.url, token=False, cache_dir=tmp_path)
    assert Path(path).read_bytes() == WEIGHTS
    assert hub.xet_requests == 0

    # The counter does count: following the advertised routes is seen and refused.
    assert web.get(head.links["xet-auth"]["url"]).status_code == 403
    assert web.get(head.links["xet-reconstruction-info"]["url"]).status_code == 403
    assert hub.xet_requests == 2 and hub.xet_paths[0] == f"/api/models/org/tiny/xet-read-token/{SHA}"


def test_hf_client_with_xet_enabled_is_caught_by_the_counter(hub, tmp_path, monkeypatch):
    pytest.importorskip("hf_xet")
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    hub.offer_xet = True
    with pytest.raises(HfHubHTTPError):
        hf_hub_download("org/tiny", "model.safetensors", endpoint=hub.url, token=False, cache_dir=tmp_path)
    assert hub.xet_requests == 1


def test_hf_cdn_redirect_serves_lfs_from_another_origin(no_xet, tmp_path, web):
    from huggingface_hub import hf_hub_download

    with HFEndpoint(
        models={"org/tiny": {"revision_sha": SHA, "files": FILES, "lfs": ["model.safetensors"]}},
        cdn=True,
        token="hf_t",
    ) as hub:
        head = web.head(
            f"{hub.url}/org/tiny/resolve/main/model.safetensors", headers={"Authorization": "Bearer hf_t"}
        )
        assert head.status_code == 302 and head.headers["Location"].startswith(hub.cdn.url)
        assert head.headers["X-Linked-Size"] == str(len(WEIGHTS)) and head.headers["X-Repo-Commit"] == SHA
        path = hf_hub_download(
            "org/tiny", "model.safetensors", endpoint=hub.url, token="hf_t", cache_dir=tmp_path
        )
        assert Path(path).read_bytes() == WEIGHTS
        assert hub.bytes_sent == 0 and hub.cdn.bytes_sent == len(WEIGHTS)


def test_hf_download_survives_a_dropped_connection(hub, no_xet, tmp_path):
    from huggingface_hub import hf_hub_download

    hub.truncate_after = 20_000
    hub.truncate_count = 1
    path = hf_hub_download("org/tiny", "model.safetensors", endpoint=hub.url, token=False, cache_dir=tmp_path)
    assert Path(path).read_bytes() == WEIGHTS
    # Two GETs, the first cut. huggingface_hub 2.4 resumes only from whole 10 MiB chunks it has
    # handed over, so on a file this small it starts again from 0; either way is accepted here.
    assert len(hub.ranges_requested("/org/tiny/resolve/main/model.safetensors")) == 2
    assert hub.bytes_sent in (len(WEIGHTS), len(WEIGHTS) + 20_000)


# -- FTPServer ----------------------------------------------------------------------------


def ftp_login(server: FTPServer, user="user", password="secret") -> ftplib.FTP:
    client = ftplib.FTP(timeout=10)
    client.connect(server.host, server.port)
    client.login(user, password)
    return client


def test_ftp_retr_rest_and_counters(ftp_server):
    (ftp_server.root / "pub").mkdir()
    (ftp_server.root / "pub" / "f.bin").write_bytes(BODY)
    client = ftp_login(ftp_server)
    assert client.nlst("pub") == ["f.bin"]
    client.voidcmd("TYPE I")  # SIZE is refused in ASCII mode
    assert client.size("pub/f.bin") == len(BODY)
    whole, tail = io.BytesIO(), io.BytesIO()
    client.retrbinary("RETR pub/f.bin", whole.write)
    client.retrbinary("RETR pub/f.bin", tail.write, rest=4000)
    client.quit()
    assert whole.getvalue() == BODY and tail.getvalue() == BODY[4000:]
    assert ftp_server.retrievals == [
        Retrieval("pub/f.bin", 0, len(BODY), True),
        Retrieval("pub/f.bin", 4000, len(BODY) - 4000, True),
    ]
    assert ftp_server.bytes_sent == 2 * len(BODY) - 4000 and ftp_server.logins == 1


def test_ftp_is_read_only_and_checks_the_password(ftp_server):
    client = ftp_login(ftp_server)
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.storbinary("STOR new.bin", io.BytesIO(b"x"))
    client.quit()
    assert not (ftp_server.root / "new.bin").exists()
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp_login(ftp_server, password="wrong")
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp_login(ftp_server, user="anonymous", password="x")


def test_ftp_from_memory_with_throttle_observable():
    big = os.urandom(1024 * 1024)
    with FTPServer(files={"d/big.bin": big}, rate_per_connection=32 * 1024) as server:
        client = ftp_login(server)
        client.voidcmd("TYPE I")
        conn = client.transfercmd("RETR d/big.bin")
        assert conn.recv(1024)
        # Paced at 32 KiB/s the server cannot have pushed the whole megabyte yet.
        assert server.bytes_sent < len(big) // 2
        conn.close()
        client.close()
