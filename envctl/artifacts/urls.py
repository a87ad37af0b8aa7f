"""URLs as envctl keeps and shows them: what identifies a source, and what must never be shown.

Three views of one URL:

- the **request URL**: exactly as written (with its credentials), sent to the server and to
  nothing else;
- the **display** (`redact_url`): the URL with every credential replaced by `***` — what
  messages, progress lines, the lock file, cache records and `cache ls` show;
- the **identity** (`identity`): the display, normalised as RFC 3986 §6.2.2 allows (scheme
  and host in lower case, a default port dropped, percent-escapes of unreserved characters
  decoded and the others in upper case, no fragment). Two URLs with one identity name one
  resource; the cache key is a hash of it, so URLs that differ in any part that selects the
  resource (host, port, path, query) never share a cache entry.

Credentials are the URL's password, its user name on http(s) when it is a token given without a
password (`https://TOKEN@github.com/org/repo.git`, GitHub's form for a token in a git URL;
`https://TOKEN:@packagecloud.io/...`, packagecloud's and Gemfury's for a package index; see
_is_token_user), and every query value that signs or authorises the request rather than
selecting the object. Signed-URL parameters, by vendor (their docs): AWS S3 SigV4 query auth
`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`; S3 SigV2, Alibaba OSS, Huawei OBS
and GCS V2 `Signature` with `AWSAccessKeyId` / `OSSAccessKeyId` / `AccessKeyId` /
`GoogleAccessId`; OSS V4 `x-oss-signature`, `x-oss-credential`, `security-token`; Tencent COS
`q-signature`, `q-ak` and `sign`; Volcengine TOS `X-Tos-Signature`, `X-Tos-Credential`; Azure
SAS `sig`; GCS V4 `X-Goog-Signature`, `X-Goog-Credential`; CloudFront (the Hub's CDN)
`Signature`; Alibaba CDN type A `auth_key`; Qiniu private links `token`; Akamai token auth
`__token__` and `hdnts` (`exp=…~acl=…~hmac=…`, the EdgeAuth libraries' default names); Upyun
token anti-leech `_upt`; nginx `secure_link $arg_md5,$arg_expires` (nginx.org's example) `md5`;
Kingsoft KS3 `KSSAccessKeyId`; a share's extraction code `pwd` (Baidu-like shares,
`/s/<id>?pwd=xxxx`). Beyond those, any parameter whose name ends in signature, token, secret,
password or credential (`access_token`, `api_token`).
A signature authenticates one request: it never chooses the bytes, so links re-signed for the
same object share an identity.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urlsplit, urlunsplit

from envctl.masking import mask

REDACTED = "***"

_SECRET_NAMES = frozenset({
    "sig", "sign", "signature", "auth_key", "authorization", "awsaccesskeyid", "ossaccesskeyid", "accesskeyid",
    "googleaccessid", "q-ak", "apikey", "api_key", "access_key", "secret_key", "passwd", "password",
    "__token__", "hdnts", "_upt", "md5", "pwd",
})
_SECRET_SUFFIXES = ("signature", "token", "secret", "password", "credential", "accesskeyid")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# A name=value pair inside a query or fragment, wherever a URL appears in free text.
_PAIR_IN_TEXT = re.compile(r"(?P<lead>[?&#;])(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&#\s\"'<>;]*)")
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/\s:@]*):(?P<password>[^@\s/]+)@")
# A user name alone (or with an empty password) in an http(s) URL in free text: a token (credential_user).
_TOKEN_USER_IN_TEXT = re.compile(r"(?P<scheme>\bhttps?://)(?P<user>[^/\s:@]+)(?P<colon>:?)@", re.IGNORECASE)
_TOKEN_USER_SCHEMES = ("http", "https")
# Access tokens' documented prefixes: GitHub's (ghp_ personal, gho_ OAuth, ghu_/ghs_ app user and
# server, ghr_ refresh; github_pat_ fine-grained), GitLab's personal and deploy tokens (glpat-,
# gldt-), Hugging Face's (hf_).
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gldt-", "hf_")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=]{20,}")  # no '.': a login name often has one (first.last2024)
_FILE_PARAMS = ("p", "path", "file", "filename", "filepath", "name")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter carries a credential (see the module docstring)."""
    lowered = unquote(name).lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def _redact_pairs(text: str) -> str:
    """`a=1&X-Amz-Signature=abc` → `a=1&X-Amz-Signature=***`; order and spelling kept."""
    if not text:
        return text
    pairs = []
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if sep and value and is_secret_param(name) else pair)
    return "&".join(pairs)


def _is_token_user(user: str, empty_password: bool) -> bool:
    """Whether a user name given without a password is a token: one given with an empty password
    (`TOKEN:@`, nobody writes a login so), one with a token prefix, or 20 characters or more of
    a token's alphabet (letters, digits, `_-+/=`; no '.'), letters and digits both. A login name
    (`alice`, `ana%40lab.cn`, `first.last2024`) is not: its password comes from ~/.netrc or
    git's credential helper, and it is shown and sent as before."""
    raw = unquote(user)
    return empty_password or raw.startswith(_TOKEN_PREFIXES) or (
        _TOKEN_CHARS.fullmatch(raw) is not None and any(c.isdigit() for c in raw) and any(c.isalpha() for c in raw))


def credential_user(url: str) -> str | None:
    """The user name of an http(s) URL when it is the credential (a token written as the user,
    _is_token_user), percent-escapes as written; None otherwise: a user beside a password is a
    login name (`alice:***@`, `oauth2:***@`), and so is a user alone that does not look like a
    token, or any user on ftp:// or ssh:// (its password comes from netrc, or a key)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in _TOKEN_USER_SCHEMES or "@" not in parts.netloc:
        return None
    user, colon, password = parts.netloc.rsplit("@", 1)[0].partition(":")
    return user if user and not password and _is_token_user(user, bool(colon)) else None


# What to do about a URL whose port is no number because a credential cut its host short.
ENCODE_CREDENTIAL = "a '#', '?' or '/' in a password or token must be percent-encoded"


def hide_userinfo(text: str) -> str:
    """`scheme://***@REST`: everything between the scheme and the URL's last '@' hidden, for a
    URL whose credential cannot be told from the rest (a '#', '?' or '/' not percent-encoded in
    a password ends the host early, and Python then reads the password's start as a port).
    Without an '@', redact_url's."""
    scheme, sep, rest = text.partition("://")
    return f"{scheme}://{REDACTED}@{rest.rsplit('@', 1)[1]}" if sep and "@" in rest else redact_url(text)


def redact_url(url: str) -> str:
    """The URL with its password, a user name that is a token (credential_user) and signed
    query values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        token = credential_user(url)
        if password or (colon and not token):
            netloc = f"{user}:{REDACTED}@{host}"
        elif token:
            netloc = f"{REDACTED}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=_redact_pairs(parts.query),
                                     fragment=_redact_pairs(parts.fragment)))


def secret_values(url: str) -> list[str]:
    """The credential strings inside a URL (raw and percent-decoded), to scrub from any text."""
    parts = urlsplit(url)
    found = []
    if parts.password:
        found.append(parts.password)
    if token := credential_user(url):
        found.append(token)
    for section in (parts.query, parts.fragment):
        for pair in section.split("&") if section else []:
            name, sep, value = pair.partition("=")
            if sep and value and is_secret_param(name):
                found.append(value)
    found += [unquote(v) for v in found]
    return sorted({v for v in found if len(v) >= 3}, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Free text (an exception's message, a tool's stderr) with every credential removed: the
    given secret strings (masked as values, not inside other words: envctl/masking.py), any URL
    password and any signed query value in URLs it mentions."""
    text = mask(text, secrets)
    text = _USERINFO_IN_TEXT.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _TOKEN_USER_IN_TEXT.sub(
        lambda m: f"{m['scheme']}{REDACTED}@" if _is_token_user(m["user"], bool(m["colon"])) else m[0], text)
    return _PAIR_IN_TEXT.sub(
        lambda m: f"{m['lead']}{m['name']}={REDACTED}" if m["value"] and is_secret_param(m["name"]) else m[0], text)


def _normalise_escapes(text: str) -> str:
    def one(match: re.Match) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED_CHARS else f"%{match.group(1).upper()}"

    return _UNRESERVED.sub(one, text)


def identity(url: str) -> str:
    """The normalised, credential-free form of a URL that names the resource (see above)."""
    parts = urlsplit(redact_url(url))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}{':' + REDACTED if parts.password else ''}@{netloc}"
    path = _normalise_escapes(parts.path) or "/"
    return urlunsplit((scheme, netloc, path, _normalise_escapes(parts.query), ""))


def identity_digest(text: str) -> str:
    """A short hash of an identity, for cache directory names (64 bits: collisions are not a
    practical concern, and the record beside the entry is checked against the full identity)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_name(url: str, fallback: str = "file") -> str:
    """A file name for what the URL serves, safe as one path component: a share link's file
    parameter (`?p=/pytorch_model-00001-of-00007.bin&dl=1`, Seafile's and similar shares),
    else the last path segment."""
    parts = urlsplit(url)
    candidates = []
    for pair in parts.query.split("&") if parts.query else []:
        name, _, value = pair.partition("=")
        if unquote(name).lower() in _FILE_PARAMS and value:
            candidates.append(unquote(value.replace("+", " ")).rstrip("/").rsplit("/", 1)[-1])
            break
    candidates.append(unquote(parts.path).rstrip("/").rsplit("/", 1)[-1])
    return next((safe for safe in map(safe_component, candidates) if safe), fallback)


def safe_component(name: str) -> str:
    """`name` as one path component: no separators, no leading dots, printable ASCII only."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip(".")[:120]
    return cleaned


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: what a redirect may leave."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def host_port(url: str) -> str:
    """`host` or `host:port` (port only when not the scheme's default), for messages."""
    scheme, host, port = origin(url)
    return host if port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
