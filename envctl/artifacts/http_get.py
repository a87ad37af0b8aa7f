"""One HTTP request as envctl's downloader makes it, and how it reads a body.

- **Bytes as sent.** Every request asks for `Accept-Encoding: identity` and every body is read
  raw (`decode_content=False`): a server that labels a `.tar.gz` `Content-Encoding: gzip`
  (Apache's `AddEncoding x-gzip .gz`, a common setup) or compresses on the fly although asked
  not to must not make envctl store other bytes than the file's, nor count decoded bytes
  against the server's Content-Length. This is what pip does for the same reason
  (`Accept-Encoding: identity` in pip's network code) and what curl and wget store by default.
- **Probing presigned links.** Object-storage links signed for GET (S3 SigV4, OSS, COS, OBS,
  GCS) answer HEAD with 403 — the method is part of what is signed; other servers answer 405.
  A refused HEAD is followed by `GET` with `Range: bytes=0-0`, whose `Content-Range` gives the
  size (and whose 206 says ranges work).
- **Messages without credentials.** Every message names the source by its display form and
  runs through urls.redact_text with the request's own secrets (signed query values, the URL
  password, header values): a library exception quoting the URL never leaks a signature.
- **Web pages instead of files.** A share link whose session expired, that needs a password
  or that points at a preview page (Seafile, ownCloud/Nextcloud, Baidu-like shares; Dropbox's
  `dl=0`; Google Drive's virus-scan warning) answers 200 with an HTML page. Such a page is
  never stored as the file: an answer labelled `text/html` (or XHTML) is refused unless the
  file's own name ends in .html/.htm or the server sends it as an attachment.
- **Redirects that leave.** A redirect whose target cannot be connected to (refused, no such
  name, connect timeout) is not retried: the same redirect would come again. A mirror that
  sends a file to another host (hf-mirror.com answering some Xet-stored files with a 302 to
  cas-bridge.xethub.hf.co, github.com/padeoe/hf-mirror-site/issues/50) is named as such. A
  redirect loop is reported, not retried.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Iterator

import requests
import urllib3

from envctl.artifacts import urls
from envctl.errors import FetchError

RETRIES = 4
TIMEOUT = (15, 60)  # connect, read: a stalled link fails and is retried instead of hanging
IDENTITY = {"Accept-Encoding": "identity"}
# HEAD refusals after which the size is asked for with a one-byte ranged GET.
HEAD_REFUSALS = (400, 403, 405, 501)
# What a dropped or short body raises while it is read raw (urllib3's own types, which
# requests wraps only inside iter_content).
READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
_CONTENT_RANGE = re.compile(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", re.IGNORECASE)  # the unit is case-insensitive (RFC 9110 14.1)
_SPAN = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.IGNORECASE)
_S3_CODE = re.compile(rb"<Code>([A-Za-z]+)</Code>")


@dataclass(frozen=True)
class Probe:
    size: int | None  # bytes, None when the server does not say
    etag: str | None  # ETag, else Last-Modified: what If-Range sends
    ranges: bool  # the server serves byte ranges
    encoding: str | None  # the Content-Encoding label, if any (the bytes are kept as sent)


def secrets_of(remote) -> list[str]:
    """The strings of a request that must never appear in a message."""
    found = urls.secret_values(remote.url)
    if remote.auth:
        # (user, password); with an empty password the user is the credential (`TOKEN:@`).
        found.append(str(remote.auth[1] or remote.auth[0]))
    for value in (remote.headers or {}).values():
        found.append(str(value))
        found.append(str(value).split(" ", 1)[-1])  # the token of "Bearer <token>"
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, remote) -> str:
    return urls.redact_text(text, secrets_of(remote))


def request(session: requests.Session, method: str, remote, headers: dict | None = None, stream: bool = False,
            refusals_ok: tuple[int, ...] = ()) -> requests.Response:
    """Send one request (retrying a dropped connection or a 5xx, with backoff); a status in
    `refusals_ok` is returned for the caller to handle. Raises FetchError."""
    last: str = "no answer"
    for attempt in range(RETRIES):
        try:
            response = session.request(method, remote.url, headers={**remote.headers, **IDENTITY, **(headers or {})},
                                       auth=remote.auth, stream=stream, timeout=TIMEOUT, allow_redirects=True)
        except requests.TooManyRedirects:
            raise FetchError(f"{remote.display}: the server redirects in a loop", hint=(
                "a link that has expired or a misconfigured server often does this; open the link in a browser "
                "to see where it leads")) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            failed = exc.request.url if getattr(exc, "request", None) is not None else remote.url
            why = _connect_failure(exc)
            if why and urls.origin(failed) != urls.origin(remote.url):
                raise _redirected_away(remote, failed, why) from None
            last = reason(exc, remote)
            time.sleep(0.5 * 2**attempt)
            continue
        except requests.RequestException as exc:  # e.g. a redirect to a URL that cannot be requested
            raise FetchError(f"{remote.display}: {reason(exc, remote)}") from None
        if response.status_code in refusals_ok:
            return response
        if response.status_code in (401, 403):
            raise _refused(remote, response, stream)
        if response.status_code == 404:
            response.close()
            raise FetchError(f"{remote.display}: not found (404)")
        if response.status_code >= 500:
            response.close()
            last = f"server error {response.status_code}"
            time.sleep(0.5 * 2**attempt)
            continue
        if response.status_code >= 400:
            response.close()
            raise FetchError(f"{remote.display}: the server answered {response.status_code}")
        if response.status_code < 300 and is_web_page(response, getattr(remote, "name", "") or urls.file_name(remote.display)):
            response.close()
            raise FetchError(
                f"{remote.display}: the server answered with a web page ({response.headers.get('Content-Type')}) "
                f"instead of the file; nothing was kept",
                hint=("open the link in a browser: a share link may need a password, a login or its direct-download "
                      "form (dl=1, /download), and an expired link must be made again"))
        return response
    raise FetchError(f"{remote.display}: {last} (after {RETRIES} tries); run again to resume")


_PAGE_TYPES = ("text/html", "application/xhtml+xml")
_PAGE_NAMES = (".html", ".htm", ".xhtml", ".shtml", ".mhtml")


def is_web_page(response: requests.Response, name: str) -> bool:
    """Whether the answer is a web page rather than the file `name` (see the module docstring)."""
    kind = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    attachment = response.headers.get("Content-Disposition", "").strip().lower().startswith("attachment")
    return kind in _PAGE_TYPES and not attachment and not name.lower().endswith(_PAGE_NAMES)


def probe(session: requests.Session, remote) -> Probe:
    """Size, validator and range support of the file, by HEAD, else by a one-byte ranged GET."""
    response = request(session, "HEAD", remote, refusals_ok=HEAD_REFUSALS)
    if response.status_code in HEAD_REFUSALS:
        response.close()
        response = request(session, "GET", remote, {"Range": "bytes=0-0"}, stream=True, refusals_ok=(416,))
        response.close()  # the one byte (or, from a server that ignores ranges, the body) is not read
        if response.status_code in (206, 416):
            return Probe(content_range_total(response), validator(response), response.status_code == 206,
                         encoding(response))
    return Probe(declared_length(response), validator(response),
                 response.headers.get("Accept-Ranges", "").lower() == "bytes", encoding(response))


def read_raw(response: requests.Response, chunk: int) -> Iterator[bytes]:
    """The body exactly as sent, whatever Content-Encoding says; raises READ_ERRORS when the
    connection drops or the body ends before its Content-Length."""
    yield from response.raw.stream(chunk, decode_content=False)


def declared_length(response: requests.Response) -> int | None:
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() and "chunked" not in response.headers.get("Transfer-Encoding", "") else None


def content_range_total(response: requests.Response) -> int | None:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def served_span(response: requests.Response) -> tuple[int, int, int | None] | None:
    """(first, last, total) byte positions a 206 says its body holds (last inclusive, total None
    for `*`), or None when it says none that is valid. A server may answer a range with
    another one than asked: block-aligned caches start before the asked offset (RFC 9110
    15.3.7 lets a server send what it has; github.com/xroche/httrack/pull/428), some send the
    whole file as a 206; the body must go where its Content-Range says, never where the
    partial file happens to end (github.com/pypa/pip/pull/14131, rust-lang/rustup#4710)."""
    if response.status_code != 206:
        return None
    match = _SPAN.fullmatch(response.headers.get("Content-Range", ""))
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        return None  # an invalid span (RFC 9110 14.4)
    return first, last, total


def full_size(response: requests.Response) -> int | None:
    """The whole file's size as this GET response states it (206: Content-Range, 200: length)."""
    return content_range_total(response) if response.status_code == 206 else declared_length(response)


def validator(response: requests.Response) -> str | None:
    """What If-Range sends: a strong ETag, else Last-Modified. A weak ETag (`W/"…"`, nginx's
    for a filtered response, Express's default) must not be sent there (RFC 9110 13.1.5) and
    never matches on servers that compare as told: every resume would start over. Only when
    there is nothing else is it kept, as what tells a changed file across runs."""
    etag = response.headers.get("ETag")
    if etag and not etag.strip().startswith("W/"):
        return etag
    return response.headers.get("Last-Modified") or etag


def encoding(response: requests.Response) -> str | None:
    label = response.headers.get("Content-Encoding", "").strip().lower()
    return label if label and label != "identity" else None


def reason(exc: BaseException | None, remote) -> str:
    """A one-line cause without credentials (library messages quote whole URLs)."""
    if exc is None:
        return "no answer"
    why = _connect_failure(exc)
    if why:
        return why
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc).strip()
    return scrub(text.splitlines()[0][:200], remote) if text else type(exc).__name__


def _connect_failure(exc: BaseException) -> str | None:
    """Why no connection could be made at all, or None for other failures (a dropped body)."""
    cause = exc.args[0] if exc.args else None
    inner = getattr(cause, "reason", cause)
    # NewConnectionError is a ConnectTimeoutError in urllib3 2: the more precise causes first.
    if isinstance(inner, urllib3.exceptions.NameResolutionError):
        return "the host name does not resolve"
    if isinstance(inner, urllib3.exceptions.NewConnectionError):
        text = str(inner).lower()
        return "connection refused" if "refused" in text else "cannot connect"
    if isinstance(exc, requests.ConnectTimeout) or isinstance(inner, urllib3.exceptions.ConnectTimeoutError):
        return "connection timed out"
    return None


def _inside(host: str, base: str) -> bool:
    base = base.removeprefix("www.")
    return host == base or host.endswith("." + base)


def _redirected_away(remote, target: str, why: str) -> FetchError:
    where = urls.host_port(target)
    stay = getattr(remote, "stay_within", None)
    if stay is not None:
        variable, endpoint = stay
        outside = not _inside(urls.origin(target)[1], urls.origin(endpoint)[1])
        if outside:
            return FetchError(
                f"{remote.display}: the mirror {endpoint} redirected outside {variable}, to {where}, "
                f"which cannot be reached from here ({why})",
                hint=(f"the mirror does not serve this file itself (it sends some Xet-stored files to the upstream "
                      f"host); running again will not help. Point {variable} at a mirror that serves it, or download "
                      f"the file where {where} is reachable and use it as a local source (a path)"))
    return FetchError(f"{remote.display}: the server redirected to {where}, which cannot be reached from here ({why})",
                      hint="running again will not help while that host is unreachable; "
                           "download the file where it is reachable and use it as a local source (a path)")


def _refused(remote, response: requests.Response, stream: bool) -> FetchError:
    code = ""
    try:
        # An S3-style error body names the refusal (AccessDenied, SignatureDoesNotMatch, ...).
        body = (response.raw.read(4096, decode_content=True) if stream else response.content) or b""
        found = _S3_CODE.search(body)
        code = f", {found.group(1).decode()}" if found else ""
    except READ_ERRORS:
        pass
    finally:
        response.close()
    signed = any(urls.is_secret_param(pair.partition("=")[0]) for pair in remote.url.partition("?")[2].split("&") if pair)
    hint = ("a signed link: it may have expired or been signed for another method; get a fresh link"
            if signed else "check the credentials (token, ~/.netrc or the URL's user)")
    return FetchError(f"{remote.display}: the server refused access ({response.status_code}{code})", hint=hint)
