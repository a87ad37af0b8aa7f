"""URL identity, redaction and file names (envctl/artifacts/urls.py), with the parameter names
object stores and share services really use (see that module's docstring for the sources)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from envctl.artifacts import urls
from envctl.artifacts.sources import SourceError, parse_source

SECRET = "c2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTA"


@pytest.mark.parametrize("name", [
    "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",  # AWS S3 SigV4, and OBS/MinIO in S3 mode
    "Signature", "AWSAccessKeyId", "OSSAccessKeyId", "security-token",  # S3 SigV2, Alibaba OSS V1
    "x-oss-signature", "x-oss-credential",  # Alibaba OSS V4
    "q-signature", "q-ak", "sign",  # Tencent COS
    "AccessKeyId",  # Huawei OBS V2
    "sig",  # Azure SAS
    "X-Goog-Signature", "X-Goog-Credential", "GoogleAccessId",  # Google Cloud Storage V4 / V2
    "X-Tos-Signature", "X-Tos-Credential",  # Volcengine TOS
    "auth_key",  # Alibaba Cloud CDN type A
    "__token__", "hdnts",  # Akamai token auth (EdgeAuth's default names)
    "_upt",  # Upyun token anti-leech
    "md5",  # nginx secure_link, as nginx.org's example names it
    "KSSAccessKeyId",  # Kingsoft KS3
    "pwd",  # a share's extraction code (Baidu-like shares)
    "token", "access_token", "api_token", "password", "client_secret",
])
def test_signed_and_token_parameters_are_redacted_everywhere(name):
    url = f"https://bucket.example.com/weights/model.bin?versionId=3&{name}={SECRET}&dl=1"
    assert urls.redact_url(url) == f"https://bucket.example.com/weights/model.bin?versionId=3&{name}=***&dl=1"
    assert SECRET not in urls.identity(url)
    text = f"HTTPSConnectionPool(host='bucket.example.com'): Max retries exceeded with url: /weights/model.bin?{name}={SECRET} (x)"
    assert SECRET not in urls.redact_text(text)
    source = parse_source(url)
    assert SECRET not in source.display and SECRET not in repr(source) and SECRET not in source.cache_key()
    assert source.request_url == url  # the request itself keeps it


@pytest.mark.parametrize("name", ["p", "dl", "versionId", "X-Amz-Date", "X-Amz-Expires", "response-content-disposition"])
def test_parameters_that_select_or_describe_the_object_are_kept(name):
    url = f"https://share.example.edu/d/KEY/files/?{name}=value"
    assert urls.redact_url(url) == url


def test_userinfo_passwords_are_redacted_and_users_kept():
    source = parse_source("https://alice:s3cr%40t@files.example.com/a.bin")
    assert source.display == "https://alice:***@files.example.com/a.bin"
    assert "s3cr" not in repr(source) and "s3cr" not in source.cache_key()
    assert urls.redact_text("fetching https://alice:s3cr3t@files.example.com/a.bin failed") == \
        "fetching https://alice:***@files.example.com/a.bin failed"


@pytest.mark.parametrize("a, b, same", [
    ("https://h/d/K/files/?p=%2Fa.bin&dl=1", "https://h/d/K/files/?p=%2Fb.bin&dl=1", False),  # the query selects
    ("https://h/a.bin", "https://h:8443/a.bin", False),  # the port
    ("https://h/a.bin", "https://mirror.h/a.bin", False),  # the host
    ("https://h/a.bin", "http://h/a.bin", False),  # the scheme
    ("https://h/x/a.bin", "https://h/y/a.bin", False),  # the path
    ("https://h/a%2Fb.bin", "https://h/a/b.bin", False),  # an escaped "/" is not a "/" (RFC 3986 2.2)
    ("https://h/a.bin?x=1&y=2", "https://h/a.bin?y=2&x=1", False),  # order may matter to a server
    ("https://h/a.bin", "https://h/a.bin#part", True),  # a fragment is never sent
    ("https://H/a.bin", "HTTPS://h:443/a.bin", True),  # case of scheme and host, default port
    ("https://h/?p=%2fa.bin", "https://h/?p=%2Fa.bin", True),  # case of escapes
    ("https://h/%7Euser/a.bin", "https://h/~user/a.bin", True),  # escaped unreserved characters
    ("https://h/a.bin?X-Amz-Signature=one", "https://h/a.bin?X-Amz-Signature=two", True),  # a re-signed link
])
def test_identity_tells_sources_apart_and_no_more(a, b, same):
    assert (urls.identity(a) == urls.identity(b)) is same
    assert (parse_source(a).cache_key() == parse_source(b).cache_key()) is same


@pytest.mark.parametrize("url, name", [
    ("https://share.example.edu/d/KEY/files/?p=%2Fpytorch_model-00001-of-00007.bin&dl=1", "pytorch_model-00001-of-00007.bin"),
    ("https://share.example.edu/d/KEY/files/?p=%2Fsub%20dir%2Fconfig.json&dl=1", "config.json"),
    ("https://h/api/v1/models/org/m/repo?Revision=master&FilePath=tokenizer%2Ftokenizer.model", "tokenizer.model"),
    ("https://h/releases/deepspeed_mlu-0.9.0-py3-none-any.whl", "deepspeed_mlu-0.9.0-py3-none-any.whl"),
    ("https://h/download?id=42", "download"),
    ("https://h/x/..%2F..%2Fetc%2Fpasswd", "passwd"),
    ("https://h/d/K/files/?p=%2F..&dl=1", "files"),
])
def test_file_names_come_from_the_share_parameter_or_the_path_and_stay_one_component(url, name):
    assert urls.file_name(url) == name
    assert parse_source(url).cache_key().endswith("/" + name)


@pytest.mark.parametrize("url, shown", [
    ("https://ghp_Q1w2E3r4T5y6U7i8O9p0@github.com/org/repo.git", "https://***@github.com/org/repo.git"),  # GitHub's form
    ("https://Q1w2E3r4T5y6U7i8O9p0:@pypi.fury.io/acme/", "https://***@pypi.fury.io/acme/"),  # Gemfury's, packagecloud's
])
def test_a_token_written_as_the_user_name_is_redacted_everywhere(url, shown):
    token = "Q1w2E3r4T5y6U7i8O9p0"
    assert urls.credential_user(url) is not None and token in urls.credential_user(url)
    assert urls.redact_url(url) == shown and token not in urls.identity(url)
    assert token in "".join(urls.secret_values(url))  # scrubbed from what a tool prints about it
    assert urls.redact_text(f"fatal: unable to access '{url}': 403") == f"fatal: unable to access '{shown}': 403"
    source = parse_source(url)
    assert source.display == shown and token not in repr(source) and token not in source.cache_key()
    assert source.request_url == url  # the request itself keeps it
    # Two tokens for one file name one resource, as two signatures do.
    assert urls.identity(url) == urls.identity(url.replace(token, "another1another2"))


@pytest.mark.parametrize("url", [
    "https://alice:s3cret@files.example.com/a.bin",  # a user beside a password: a login name, shown
    "ftp://anonymous@ftp.example.com/pub/a.bin",  # ftp's user alone: a login whose password is netrc's
    "ssh://git@github.com/org/repo.git",  # ssh's: a login with a key
])
def test_a_user_name_beside_a_password_or_on_another_scheme_is_no_token(url):
    assert urls.credential_user(url) is None
    assert urls.redact_url(url).split("@")[0].split("://")[1].split(":")[0] == urlsplit(url).username


@pytest.mark.parametrize("written, shown", [
    ("git+https://ghp_Q1w2E3r4T5y6U7i8O9p0@github.com/org/repo", "git+https://***@github.com/org/repo"),
    ("git+https://oauth2:glpat-Q1w2E3r4T5y6U7i8O9p0@gitlab.example.com/org/repo@", "git+https://oauth2:***@gitlab.example.com/org/repo@"),
])
def test_an_unpinned_git_source_is_quoted_without_its_credential(written, shown):
    # No ref: the '@' before the host is taken for the ref's, and the URL was quoted as written.
    with pytest.raises(SourceError) as caught:
        parse_source(written)
    assert str(caught.value) == f"'{shown}': pin a commit or tag: git+https://host/repo@<commit or tag>"


@pytest.mark.parametrize("written, said", [
    ("https://hf_Q1w2E3r4T5y6U7i8O9p0@huggingface.co/org/repo/blob/main/model.bin",
     "'https://***@huggingface.co/org/repo/blob/main/model.bin' is a file's web page (HTML); the file itself is "
     "https://***@huggingface.co/org/repo/resolve/main/model.bin"),
    ("https://ana:Q1w2E3r4T5y6U7i8O9p0@hf-mirror.com/org/repo/blob/main/model.bin",
     "'https://ana:***@hf-mirror.com/org/repo/blob/main/model.bin' is a file's web page (HTML); the file itself is "
     "https://ana:***@hf-mirror.com/org/repo/resolve/main/model.bin"),
])
def test_the_file_a_hub_page_stands_for_is_said_without_the_page_credential(written, said):
    with pytest.raises(SourceError) as caught:
        parse_source(written)
    assert str(caught.value) == said


@pytest.mark.parametrize("url", [
    "https://alice@files.example.com/a.bin",  # a login whose password ~/.netrc or git's credential helper holds
    "https://ana%40lab.cn@artifactory.example.com/a.bin",  # an email as the login
    "https://zhang.san.lab2024ab@files.example.com/a.bin",  # long, letters and digits, but a '.'
])
def test_a_login_name_alone_is_no_token_and_stays_shown(url):
    assert urls.credential_user(url) is None
    assert urls.redact_url(url) == url and urls.redact_text(f"see {url}") == f"see {url}"
    assert parse_source(url).display == url


@pytest.mark.parametrize("text, shown", [
    ("https://user:pa#ss-Secret@files.example.com/a.bin", "https://***@files.example.com/a.bin"),
    ("https://user:pa?ss-Secret@files.example.com/a.bin", "https://***@files.example.com/a.bin"),
    ("git+https://oauth2:glpat-ab#cd-Secret@gitlab.com/org/repo@v1", "git+https://***@gitlab.com/org/repo"),
])
def test_a_password_with_an_unencoded_hash_or_question_mark_is_refused_masked(text, shown):
    """Python reads the host as ending at the '#' or '?', and the password's start as a port: a
    clear error naming the fix, never the password, and for git no traceback later (identity)."""
    with pytest.raises(SourceError) as refused:
        parse_source(text)
    assert str(refused.value).startswith(f"'{shown}': the URL's port is not a number") and "%23" in str(refused.value)
    assert "Secret" not in str(refused.value)
