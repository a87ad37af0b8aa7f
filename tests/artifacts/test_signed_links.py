"""Presigned object-storage links and other credentials in URLs, through the CLI against a
loopback server that checks signatures as object stores do: a link signed for GET is refused
for HEAD (the method is signed; github.com/adobe/S3Mock/issues/125, minio/minio#6146), so the
size is probed with a one-byte ranged GET. Signed values, URL passwords and tokens are
credentials: they appear in no output, no cache file and no lock file."""

from __future__ import annotations

import os

import pytest

from download_helpers import dead_port, envctl, files_containing, placed, sha, write_manifest
from servers.fixtures import file_server  # noqa: F401

MiB = 1 << 20
KEY = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def assert_nowhere(tmp_path, secret: str, *runs) -> None:
    for run in runs:
        assert secret not in run.stdout and secret not in run.stderr, (run.stdout, run.stderr)
    assert files_containing(tmp_path / "cache", secret) == []
    assert files_containing(tmp_path / "m" / "manifest.lock", secret) == [] if (tmp_path / "m" / "manifest.lock").exists() else True


def signature_in(url: str, param: str) -> str:
    return url.split(f"{param}=", 1)[1].split("&", 1)[0]


def test_a_presigned_s3_link_is_probed_with_a_ranged_get_and_its_signature_kept_secret(tmp_path, file_server):
    data = os.urandom(3 * MiB)
    file_server.put("/checkpoints/model.safetensors", data)
    file_server.signing_key = KEY
    url = file_server.presign("/checkpoints/model.safetensors", {"X-Amz-Security-Token": "IQoJb3JpZ2luX2VjEXAMPLETOKEN"})
    signature = signature_in(url, "X-Amz-Signature")
    manifest = write_manifest(tmp_path, f"w: {{source: '{url}'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest))
    assert fetched.returncode == 0, fetched.stderr
    assert placed(fetched.stdout)["w"].read_bytes() == data
    methods = [(h.method, h.range) for h in file_server.hits]
    assert methods[:2] == [("HEAD", None), ("GET", "bytes=0-0")]  # HEAD refused, then one byte asked for
    locked = envctl(tmp_path, "lock", str(manifest))
    assert locked.returncode == 0, locked.stderr
    lock = (manifest.parent / "manifest.lock").read_text()
    assert "X-Amz-Signature=***" in lock and sha(data) in lock
    listed = envctl(tmp_path, "cache", "ls")
    assert "X-Amz-Signature=***" in listed.stdout
    again = envctl(tmp_path, "fetch", str(manifest))  # the lock's entry is found under the redacted source
    assert again.returncode == 0 and "artifact   w: cached" in again.stderr
    shown, planned = envctl(tmp_path, "show", str(manifest)), envctl(tmp_path, "plan", str(manifest))
    assert shown.returncode == 0 and "X-Amz-Signature=***" in shown.stdout
    assert "X-Amz-Signature=***" in planned.stdout, planned.stderr
    for secret in (signature, "IQoJb3JpZ2luX2VjEXAMPLETOKEN", "AKIAENVCTLTEST"):
        assert_nowhere(tmp_path, secret, fetched, locked, listed, again, shown, planned)


# Signature parameters of other stores (see envctl/artifacts/urls.py for each vendor's docs),
# with the other credentials their links carry.
VENDORS = {
    "Signature": {"OSSAccessKeyId": "LTAI5tEXAMPLEACCESSID", "security-token": "CAISEXAMPLESTSTOKEN"},  # Alibaba OSS V1
    "x-oss-signature": {"x-oss-credential": "LTAI5tEXAMPLE/20260101/cn-hangzhou/oss/aliyun_v4_request"},
    "q-signature": {"q-ak": "AKIDEXAMPLECOSID", "q-sign-algorithm": "sha1"},  # Tencent COS
    "sign": {},  # Tencent COS, the single-parameter form
    "AccessKeyId": {},  # Huawei OBS V2 carries AccessKeyId beside Signature; here the signed one
    "sig": {"sv": "2022-11-02", "sp": "r", "se": "2026-12-31T00:00:00Z"},  # Azure SAS
    "X-Goog-Signature": {"X-Goog-Credential": "svc@proj.iam.gserviceaccount.com/20260101/auto/storage/goog4_request"},
    "X-Tos-Signature": {"X-Tos-Credential": "AKLTEXAMPLE/20260101/cn-beijing/tos/request"},  # Volcengine TOS
    "token": {"e": "1767225600"},  # Qiniu private links
    "__token__": {},  # Akamai token auth
    "md5": {"expires": "2147483647"},  # nginx secure_link
}


@pytest.mark.parametrize("param", list(VENDORS))
def test_other_stores_signed_links_fetch_and_their_credentials_never_show(tmp_path, file_server, param):
    data = os.urandom(MiB)
    file_server.put("/data/train.jsonl", data)
    file_server.signing_key, file_server.signature_param = KEY, param
    url = file_server.presign("/data/train.jsonl", VENDORS[param])
    signature = signature_in(url, param)
    manifest = write_manifest(tmp_path, f"d: {{source: '{url}'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest))
    assert fetched.returncode == 0, fetched.stderr
    assert placed(fetched.stdout)["d"].read_bytes() == data
    # The same link with a signature the server refuses (expired, or copied wrong): a clear
    # error that says what kind of link it is, and still no signature anywhere.
    forged = url.replace(signature, "f" * len(signature))
    (tmp_path / "cache2").mkdir()
    refused = envctl(tmp_path, "fetch", str(write_manifest(tmp_path, f"d: {{source: '{forged}'}}\n")),
                     env={"ENVCTL_CACHE": str(tmp_path / "cache2")})
    assert refused.returncode == 6, refused.stderr
    assert "the server refused access (403, SignatureDoesNotMatch)" in refused.stderr
    assert "a signed link: it may have expired" in refused.stderr and f"{param}=***" in refused.stderr
    secrets = [signature, "f" * len(signature)] + [v for k, v in VENDORS[param].items()
                                                   if k not in ("q-sign-algorithm", "sv", "sp", "se", "e", "expires")]
    for secret in secrets:
        assert_nowhere(tmp_path, secret, fetched, refused)
        assert files_containing(tmp_path / "cache2", secret) == []


def test_a_server_that_allows_only_get_is_probed_with_a_ranged_get(tmp_path, file_server):
    data = os.urandom(2 * MiB)
    file_server.put("/w.bin", data)
    file_server.head_status = 405
    file_server.truncate_after, file_server.truncate_count = MiB, 1
    manifest = write_manifest(tmp_path, f"w: {{source: '{file_server.url_for('/w.bin')}', sha256: {sha(data)}}}\n")
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 0, done.stderr
    assert placed(done.stdout)["w"].read_bytes() == data
    assert file_server.ranges_requested("/w.bin")[:1] == ["bytes=0-0"]
    assert f"bytes={MiB}-" in file_server.ranges_requested("/w.bin")  # the probe's 206 let the cut body resume


def test_an_unreachable_signed_link_is_named_without_its_signature(tmp_path, file_server):
    file_server.signing_key = KEY
    url = file_server.presign("/gone.bin").replace(f":{file_server.port}/", f":{dead_port()}/")
    signature = signature_in(url, "X-Amz-Signature")
    done = envctl(tmp_path, "fetch", str(write_manifest(tmp_path, f"g: {{source: '{url}'}}\n")))
    assert done.returncode == 6
    assert "connection refused (after 4 tries); run again to resume" in done.stderr and "X-Amz-Signature=***" in done.stderr
    assert_nowhere(tmp_path, signature, done)


def fetch_and_lock_behind(tmp_path, file_server, auth: tuple[str, str], userinfo: str):
    """A file served only with Basic `auth`, fetched then locked through its URL with `userinfo`
    (`user:password@`...) written in: (the URL, the fetch, the lock, the lock file's text), both
    runs checked to succeed and the file's bytes to arrive."""
    data = os.urandom(MiB)
    file_server.put("/vendor/toolkit.run", data)
    file_server.require_auth = auth
    url = file_server.url_for("/vendor/toolkit.run").replace("://", "://" + userinfo)
    manifest = write_manifest(tmp_path, f"t: {{source: '{url}'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest))
    assert fetched.returncode == 0, fetched.stderr
    assert placed(fetched.stdout)["t"].read_bytes() == data
    locked = envctl(tmp_path, "lock", str(manifest))
    assert locked.returncode == 0, locked.stderr
    return url, fetched, locked, (manifest.parent / "manifest.lock").read_text()


def test_a_url_password_is_used_and_never_shown(tmp_path, file_server):
    good, fetched, locked, lock = fetch_and_lock_behind(tmp_path, file_server, ("partner", "pa55-w0rd-xyz"),
                                                        "partner:pa55-w0rd-xyz@")
    assert "partner:***@" in lock
    wrong = envctl(tmp_path, "fetch", str(write_manifest(tmp_path, f"t: {{source: '{good.replace('xyz', 'abc')}'}}\n")),
                   env={"ENVCTL_CACHE": str(tmp_path / "cache2")})
    assert wrong.returncode == 6 and "partner:***@" in wrong.stderr and "refused access (401)" in wrong.stderr
    for secret in ("pa55-w0rd-xyz", "pa55-w0rd-abc"):
        assert_nowhere(tmp_path, secret, fetched, locked, wrong)


@pytest.mark.parametrize("userinfo", ["{token}@", "{token}:@"])  # GitHub's form; packagecloud's and Gemfury's
def test_a_token_written_as_the_url_user_is_sent_and_never_shown(tmp_path, file_server, userinfo):
    token = "ghp_" + "Zq8" * 12
    # The user is the token, the password empty: as curl and git send it.
    _url, fetched, locked, lock = fetch_and_lock_behind(tmp_path, file_server, (token, ""), userinfo.format(token=token))
    assert "://***@127.0.0.1" in lock
    listed = envctl(tmp_path, "cache", "ls")
    assert listed.returncode == 0 and "://***@127.0.0.1" in listed.stdout, listed.stdout
    assert_nowhere(tmp_path, token, fetched, locked, listed)


def test_a_login_name_alone_takes_its_password_from_netrc_and_stays_shown(tmp_path, file_server):
    """`https://alice@host/f` names the account; ~/.netrc holds its password. Not a token (see
    urls.credential_user): requests is left to find netrc's entry, as before."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine 127.0.0.1 login alice password s3cret-netrc\n")
    (home / ".netrc").chmod(0o600)
    _url, fetched, locked, lock = fetch_and_lock_behind(tmp_path, file_server, ("alice", "s3cret-netrc"), "alice@")
    assert "://alice@127.0.0.1" in lock
    assert_nowhere(tmp_path, "s3cret-netrc", fetched, locked)
