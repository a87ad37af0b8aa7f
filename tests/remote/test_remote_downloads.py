"""Lab hosts that download artifacts themselves (`fetch: remote`, with curl) hold the same rules
as envctl's own downloader: bytes as sent whatever Content-Encoding says (no --compressed,
`Accept-Encoding: identity`), signed links fetched and their signatures shown nowhere — not in
output, not on this machine's disk, not on the host's disk, not on a command line."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

from servers.http_files import FileServer

KEY = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_containing(root: Path, secret: str) -> list[str]:
    return [str(p) for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
            and secret.encode() in p.read_bytes()] if root.exists() else []


def test_a_host_downloading_with_curl_keeps_labelled_bytes_and_signatures_secret(world, lab, monkeypatch):
    tarball = gzip.compress(os.urandom(2 << 20), compresslevel=1)  # random: as large as it is
    weights = os.urandom(3 << 20)
    world.write_inventory(lab1={"fetch": "remote"})
    # On the lab network: lab hosts download from it.
    monkeypatch.setattr(FileServer, "address", lab.gateway)
    with FileServer(files={"/data/AdvertiseGen.tar.gz": tarball, "/ckpt/model.bin": weights},
                    content_encoding="gzip", signing_key=KEY) as store:
        data_url = store.presign("/data/AdvertiseGen.tar.gz")
        model_url = store.presign("/ckpt/model.bin", {"X-Amz-Security-Token": "IQoJb3JpZ2luX2VjEXAMPLETOKEN"})
        secrets = [u.split("X-Amz-Signature=")[1].split("&")[0] for u in (data_url, model_url)]
        secrets += ["IQoJb3JpZ2luX2VjEXAMPLETOKEN", "AKIAENVCTLTEST"]
        manifest = world.write(f"""\
            device: {{kind: cpu}}
            image: {{ref: busybox:latest}}
            artifacts:
              data: {{source: "{data_url}", sha256: {sha(tarball)}}}
              model: {{source: "{model_url}"}}
            """)
        done = world.run("fetch", str(manifest), "--host", "lab1")
        assert done.returncode == 0, done.stderr
        assert "artifact   data: downloaded by lab1" in done.stderr and "artifact   model: downloaded by lab1" in done.stderr
        blobs = f"{world.data_dir()}/cache/blobs/sha256"
        assert world.remote("lab1", f"{blobs}/{sha(tarball)}").read_bytes() == tarball  # as sent, not gunzipped
        assert world.remote("lab1", f"{blobs}/{sha(weights)}").read_bytes() == weights
        gets = [s for s in store.seen if s.method == "GET"]
        assert gets and {s.accept_encoding for s in gets} == {"identity"}

        # A link whose signature the store refuses: the host's curl fails, and says so without it.
        forged = model_url.replace(secrets[1], "0" * len(secrets[1]))
        world.write(f"""\
            device: {{kind: cpu}}
            image: {{ref: busybox:latest}}
            artifacts:
              model: {{source: "{forged}"}}
            """)
        lab.run_in("lab1", "rm", "-rf", world.data_dir())
        refused = world.run("fetch", str(manifest), "--host", "lab1")
    assert refused.returncode != 0
    assert "lab1: downloading" in refused.stderr and "X-Amz-Signature=***" in refused.stderr and "403" in refused.stderr
    for secret in secrets + ["0" * len(secrets[1])]:
        for run in (done, refused):
            assert secret not in run.stdout + run.stderr
        assert files_containing(world.base / "cache", secret) == []
        assert files_containing(world.remote("lab1", world.data_dir()), secret) == []


def test_a_host_sent_by_a_redirect_to_a_host_it_cannot_reach_is_told_so(world, lab, monkeypatch):
    world.write_inventory(lab1={"fetch": "remote"})
    monkeypatch.setattr(FileServer, "address", lab.gateway)
    # RFC 6761: .invalid never resolves, as an upstream host does not behind a mirror.
    with FileServer(redirects={"/ckpt/model.bin": "http://cas-bridge.envctl-test.invalid/xet/model.bin"}) as mirror:
        manifest = world.write(f"""\
            device: {{kind: cpu}}
            image: {{ref: busybox:latest}}
            artifacts:
              model: {{source: "{mirror.url_for('/ckpt/model.bin')}"}}
            """)
        url = mirror.url_for("/ckpt/model.bin")
        done = world.run("fetch", str(manifest), "--host", "lab1")
    assert done.returncode != 0
    assert (f"downloading {url} failed: the server redirected to "
            "cas-bridge.envctl-test.invalid, which") in done.stderr and "cannot reach" in done.stderr
    assert "running again will not help" in done.stderr and "run again to resume" not in done.stderr
