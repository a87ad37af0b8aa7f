"""`FileServer`: a real HTTP file server on 127.0.0.1 with knobs for the failures a fetcher meets.

Content comes from a directory (`root=`), an in-memory mapping of URL path -> bytes (`files=`),
or both (the mapping wins). Paths are URL paths: "/a/b.bin". Content is read at request time,
so `put()` or editing a file under `root` while the server runs changes what later requests get.

Per response:

- `ETag` is the quoted sha256 of the content; `Content-Length` always; `Accept-Ranges: bytes`.
- `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` answer 206 with `Content-Range`; a range starting
  at or past the end answers 416 with `Content-Range: bytes */size`; a malformed or multi-range
  header is ignored (200, full body), as RFC 9110 allows.
- `If-Range` with the current ETag honours the Range; any other value (an old ETag, a date)
  answers 200 with the whole current file.
- HEAD answers the same headers without a body.
- `redirects={"/a": "/b"}` answers 302 with `Location` (a path or a full URL).

Knobs (plain attributes; set them in the constructor or change them while the server runs):

- `ignore_range=True`: always 200 with the full body and no `Accept-Ranges` header.
- `rate_per_connection=N`: pace each response body to about N bytes/s by sleeping between
  writes. Every connection is paced on its own, so parallel connections get more in total, like
  a link limited per TCP stream. Pacing stops early when the server stops.
- `truncate_after=N`: a GET body longer than N bytes is cut after N bytes and the connection is
  closed, although the headers announced the full length (a dropped connection).
  `truncate_count=K` limits this to the next K responses (None: every response).
- `fail_after_requests=N`: the first N requests are served normally; every later one answers
  `fail_status` (default 503).
- `require_auth=(user, password)`: requests without that HTTP Basic auth answer 401.
- `content_encoding="gzip"` (or x-gzip, br, deflate): file responses carry that
  `Content-Encoding` label although the bytes are the file's own, whatever the client's
  `Accept-Encoding` says — Apache's `AddEncoding x-gzip .gz .tgz` on a `.tar.gz`, the stock
  setup on many distributions (a client that decodes stores other bytes than the file's).
- `chunked=True`: file bodies go out with `Transfer-Encoding: chunked` and no Content-Length
  (a dynamic handler or proxy that does not know the length).
- `head_status=405`: every HEAD answers that status, as servers that allow only GET do.
- `signing_key="..."`: files are served only to requests whose query carries a valid
  signature in `signature_param` (default `X-Amz-Signature`), as object storage checks a
  presigned link: an HMAC over the method, the path and the other query parameters. `presign()`
  makes such a URL for GET; a HEAD with it is refused 403 `SignatureDoesNotMatch` (the method is
  part of what is signed: AWS S3 SigV4 query auth; github.com/adobe/S3Mock/issues/125).
- `share(prefix, {name: bytes})`: a share link's folder served by query, as Seafile's
  `/d/<token>/files/?p=/<name>&dl=1` (and similar shares): one URL path for every file, the
  file chosen by `p`, answered with `Content-Disposition: attachment; filename="<name>"`.

Counters (safe to read from the test thread; `reset_counters()` clears them):

- `requests`: number of requests received, whatever their outcome.
- `hits`: one `Hit(path, range, method)` per request, in arrival order, `range` being the
  request's Range header or None; `seen`: one `Seen(path, method, query, accept_encoding)`
  per request, in the same order.
- `bytes_sent`: total body bytes written for file content; `bytes_by_path` per URL path.
  Bytes are counted just before each socket write, so once a client has read them they are
  already counted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ._background import BackgroundHTTPServer

CHUNK = 64 * 1024
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")
_UNSATISFIABLE = object()


class Hit(NamedTuple):
    """One request as the server saw it."""

    path: str  # the URL path, percent-decoded, without the query string
    range: str | None  # the Range header as sent
    method: str


class Seen(NamedTuple):
    """More of one request, for tests about headers and queries (kept apart from `Hit`)."""

    path: str
    method: str
    query: str  # the raw query string
    accept_encoding: str | None  # the Accept-Encoding header as sent


def sha256_etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


def parse_range(header: str, size: int):
    """(start, end) inclusive for a single satisfiable range, `_UNSATISFIABLE`, or None to ignore it."""
    m = _RANGE.fullmatch(header)
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first, last = m.group(1), m.group(2)
    if first == "":  # suffix range: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return _UNSATISFIABLE
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: RFC 9110 says ignore the header
    if start >= size:
        return _UNSATISFIABLE
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


class FileServer(BackgroundHTTPServer):
    """See the module docstring for the contract."""

    def __init__(
        self,
        root: str | Path | None = None,
        files: Mapping[str, bytes] | None = None,
        *,
        redirects: Mapping[str, str] | None = None,
        ignore_range: bool = False,
        rate_per_connection: int | None = None,
        truncate_after: int | None = None,
        truncate_count: int | None = None,
        fail_after_requests: int | None = None,
        fail_status: int = 503,
        require_auth: tuple[str, str] | None = None,
        content_encoding: str | None = None,
        chunked: bool = False,
        head_status: int | None = None,
        signing_key: str | None = None,
        signature_param: str = "X-Amz-Signature",
    ) -> None:
        super().__init__()
        self.root = Path(root).resolve() if root is not None else None
        self.files: dict[str, bytes] = {}
        for path, data in (files or {}).items():
            self.put(path, data)
        self.redirects: dict[str, str] = dict(redirects or {})
        self.ignore_range = ignore_range
        self.rate_per_connection = rate_per_connection
        self.truncate_after = truncate_after
        self.truncate_count = truncate_count
        self.fail_after_requests = fail_after_requests
        self.fail_status = fail_status
        self.require_auth = require_auth
        self.content_encoding = content_encoding
        self.chunked = chunked
        self.head_status = head_status
        self.signing_key = signing_key
        self.signature_param = signature_param
        self.shares: dict[str, dict[str, bytes]] = {}
        self._counter_lock = threading.Lock()
        self.reset_counters()

    # -- content ---------------------------------------------------------------------------

    def put(self, path: str, data: bytes) -> str:
        """Serve `data` at URL path `path` (from now on); returns the normalised path."""
        path = "/" + path.lstrip("/")
        self.files[path] = bytes(data)
        return path

    def share(self, prefix: str, files: Mapping[str, bytes]) -> None:
        """Serve `files` under one share link: `<prefix>?p=/<name>&dl=1` (see the module docstring)."""
        self.shares["/" + prefix.lstrip("/")] = {"/" + n.lstrip("/"): bytes(d) for n, d in files.items()}

    def share_url(self, prefix: str, name: str) -> str:
        """The link a share page hands out for one file: the name percent-encoded in `p`."""
        return self.url_for(prefix) + "?" + urlencode({"p": "/" + name.lstrip("/"), "dl": "1"}, quote_via=quote, safe="")

    def signature(self, method: str, path: str, params: Iterable[tuple[str, str]]) -> str:
        """The signature the server expects: HMAC-SHA256 over method, path and sorted parameters."""
        text = "\n".join([method, path] + [f"{k}={v}" for k, v in sorted(params) if k != self.signature_param])
        return hmac.new(self.signing_key.encode(), text.encode(), hashlib.sha256).hexdigest()

    def presign(self, path: str, extra: Mapping[str, str] | None = None, method: str = "GET") -> str:
        """A URL for `path` signed for `method`, with S3-style parameters (and `extra` ones)."""
        path = "/" + path.lstrip("/")
        params = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                  "X-Amz-Credential": "AKIAENVCTLTEST/20260101/us-east-1/s3/aws4_request",
                  "X-Amz-Date": "20260101T000000Z", "X-Amz-Expires": "3600", "X-Amz-SignedHeaders": "host",
                  **(extra or {})}
        params[self.signature_param] = self.signature(method, path, params.items())
        return self.url_for(path) + "?" + urlencode(params, quote_via=quote, safe="")

    def remove(self, path: str) -> None:
        self.files.pop("/" + path.lstrip("/"), None)

    def url_for(self, path: str) -> str:
        return self.url + "/" + path.lstrip("/")

    def lookup(self, path: str) -> bytes | None:
        """The content served at URL path `path`, or None."""
        if path in self.files:
            return self.files[path]
        if self.root is None:
            return None
        candidate = (self.root / path.lstrip("/")).resolve()
        # Never serve outside root, whatever "../" the request carries.
        if candidate != self.root and self.root not in candidate.parents:
            return None
        return candidate.read_bytes() if candidate.is_file() else None

    # -- counters --------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._counter_lock:
            self.requests = 0
            self.hits: list[Hit] = []
            self.seen: list[Seen] = []
            self.bytes_sent = 0
            self.bytes_by_path: dict[str, int] = {}

    def ranges_requested(self, path: str) -> list[str | None]:
        """The Range header of every GET of `path`, in order (None for a whole-file GET)."""
        return [h.range for h in list(self.hits) if h.path == path and h.method == "GET"]

    def _count_bytes(self, path: str, n: int) -> None:
        with self._counter_lock:
            self.bytes_sent += n
            self.bytes_by_path[path] = self.bytes_by_path.get(path, 0) + n

    # -- request handling ------------------------------------------------------------------

    def dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        with self._counter_lock:
            self.requests += 1
            number = self.requests
            self.hits.append(Hit(path, handler.headers.get("Range"), method))
            self.seen.append(Seen(path, method, split.query, handler.headers.get("Accept-Encoding")))
        # Drain a request body so the connection stays usable for the next request.
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""

        if self.fail_after_requests is not None and number > self.fail_after_requests:
            self.reply(handler, self.fail_status, b"injected failure\n", head=method == "HEAD")
            return
        if self.require_auth is not None and not self._basic_auth_ok(handler):
            self.reply(
                handler,
                401,
                b"authentication required\n",
                headers={"WWW-Authenticate": 'Basic realm="test"'},
                head=method == "HEAD",
            )
            return
        if path in self.redirects:
            self.reply(handler, 302, b"", headers={"Location": self.redirects[path]}, head=method == "HEAD")
            return
        if method == "HEAD" and self.head_status is not None:
            self.reply(handler, self.head_status, b"", headers={"Allow": "GET"}, head=True)
            return
        if self.signing_key is not None and not self._signature_ok(method, path, split.query):
            self.reply(handler, 403, b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>"
                       b"<Message>The request signature we calculated does not match the signature you provided."
                       b"</Message></Error>", content_type="application/xml", head=method == "HEAD")
            return
        if path in self.shares and method in ("GET", "HEAD"):
            name = dict(parse_qsl(split.query)).get("p", "")
            data = self.shares[path].get("/" + name.lstrip("/"))
            if data is None:
                self.reply(handler, 404, b"not found\n", head=method == "HEAD")
                return
            filename = name.rsplit("/", 1)[-1]
            self.send_content(handler, method, path, data,
                              headers={"Content-Disposition": f'attachment; filename="{filename}"'})
            return
        self.route(handler, method, path, split.query, body)

    def _signature_ok(self, method: str, path: str, query: str) -> bool:
        params = parse_qsl(query, keep_blank_values=True)
        given = dict(params).get(self.signature_param)
        return given is not None and hmac.compare_digest(given, self.signature(method, path, params))

    def route(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: str, body: bytes) -> None:
        """Serve files; subclasses route their own URL space and call `send_content`."""
        if method not in ("GET", "HEAD"):
            self.reply(handler, 405, b"method not allowed\n", headers={"Allow": "GET, HEAD"})
            return
        data = self.lookup(path)
        if data is None:
            self.reply(handler, 404, b"not found\n", head=method == "HEAD")
            return
        self.send_content(handler, method, path, data)

    def _basic_auth_ok(self, handler: BaseHTTPRequestHandler) -> bool:
        user, password = self.require_auth
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return handler.headers.get("Authorization") == expected

    def reply(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        content_type: str = "text/plain; charset=utf-8",
        head: bool = False,
    ) -> None:
        """A small complete response (errors, JSON); its bytes are not counted in `bytes_sent`."""
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items() if isinstance(headers, Mapping) else headers:
            handler.send_header(name, value)
        handler.end_headers()
        if body and not head:
            handler.wfile.write(body)

    def send_content(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        data: bytes,
        *,
        etag: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer with `data` honouring Range/If-Range and every knob; `etag` must be quoted."""
        etag = etag or sha256_etag(data)
        size = len(data)
        start, end, status = 0, size - 1, 200
        range_header = handler.headers.get("Range")
        if range_header is not None and not self.ignore_range:
            if_range = handler.headers.get("If-Range")
            # Strong comparison only (RFC 9110 13.1.5): a date or weak tag never matches here.
            if if_range is None or if_range.strip() == etag:
                parsed = parse_range(range_header, size)
                if parsed is _UNSATISFIABLE:
                    self.reply(
                        handler,
                        416,
                        b"",
                        headers={"Content-Range": f"bytes */{size}", "ETag": etag},
                        head=method == "HEAD",
                    )
                    return
                if parsed is not None:
                    (start, end), status = parsed, 206

        length = max(0, end - start + 1)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/octet-stream")
        if self.chunked and method != "HEAD":
            handler.send_header("Transfer-Encoding", "chunked")
        elif not self.chunked:
            handler.send_header("Content-Length", str(length))
        if self.content_encoding:
            handler.send_header("Content-Encoding", self.content_encoding)
        handler.send_header("ETag", etag)
        if not self.ignore_range:
            handler.send_header("Accept-Ranges", "bytes")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        if method == "HEAD" or (length == 0 and not self.chunked):
            return
        self._write_body(handler, path, memoryview(data)[start : end + 1])

    def _take_truncation(self, length: int) -> int | None:
        """How many bytes this response may send before the connection drops, or None."""
        with self._counter_lock:
            limit = self.truncate_after
            if limit is None or length <= limit:
                return None
            if self.truncate_count is not None:
                if self.truncate_count <= 0:
                    return None
                self.truncate_count -= 1
            return limit

    def _write_body(self, handler: BaseHTTPRequestHandler, path: str, body: memoryview) -> None:
        limit = self._take_truncation(len(body))
        if limit is not None:
            body = body[:limit]
        rate = self.rate_per_connection
        # About 20 writes a second when paced: smooth enough that a client sees steady progress.
        chunk = max(1, min(CHUNK, rate // 20)) if rate else CHUNK
        started, sent = time.monotonic(), 0
        for offset in range(0, len(body), chunk):
            piece = body[offset : offset + chunk]
            self._count_bytes(path, len(piece))
            try:
                if self.chunked:
                    handler.wfile.write(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
                else:
                    handler.wfile.write(piece)
            except OSError:
                handler.close_connection = True
                return
            sent += len(piece)
            if rate:
                due = sent / rate - (time.monotonic() - started)
                if due > 0 and self.stopping.wait(due):
                    handler.close_connection = True
                    return
        if self.chunked and limit is None:
            try:
                handler.wfile.write(b"0\r\n\r\n")  # the last chunk: the body's proper end
            except OSError:
                handler.close_connection = True
                return
        if limit is not None:
            # The headers promised more: hang up so the client sees a short read, not a stall.
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
