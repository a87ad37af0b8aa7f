"""File servers that misbehave the way real ones do, each a small `FileServer` subclass.

- `MisplacedRangeServer(place=...)`: answers a `Range: bytes=N-[M]` GET with a 206 whose
  span starts where `place(N, size)` says (and ends where asked), or, when it returns None,
  the bytes from 0 go out as a 206 *without* a Content-Range header. Block-aligned caches start before N
  (github.com/xroche/httrack/pull/428); some proxies send the whole file as a 206
  (`place=lambda n, size: 0`, github.com/jizhi0v0/duo-updater/issues/225); some IPTV-style
  origins omit Content-Range (github.com/razzamatazm/mustarrd/pull/146). The one-byte probe
  (`bytes=0-0`) is answered properly, so the misbehaviour shows only when resuming or in
  segments. `misplaced` counts the responses it misplaced.
- `LoginWallServer`: every file path under `walled` (a URL path prefix) answers 200 with an
  HTML login page (`Content-Type: text/html`), as a share link whose session expired or whose
  password is missing does (Seafile, ownCloud/Nextcloud, Baidu-like shares, a Dropbox `dl=0`
  preview); other paths are served as files. `attachment=True` sends the same page with
  `Content-Disposition: attachment` (a server handing out an HTML file to save).
- `WeakETagServer`: files carry a weak `ETag: W/"..."` (what nginx sends for a response a
  filter changed, and Express's default) and a `Last-Modified` date, and `If-Range` is
  compared strongly, as RFC 9110 13.1.5 and nginx do: a weak tag never matches (the whole file
  comes back, 200), the date does.
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from .http_files import FileServer, parse_range, sha256_etag

LOGIN_PAGE = (b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log In - Share</title></head>"
              b"<body><form method=\"post\" action=\"/accounts/login/\"><input name=\"password\" type=\"password\">"
              b"</form></body></html>\n")


class MisplacedRangeServer(FileServer):
    """See the module docstring."""

    def __init__(self, *args, place: Callable[[int, int], int | None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.place = place
        self.misplaced = 0

    def send_content(self, handler: BaseHTTPRequestHandler, method: str, path: str, data: bytes, *, etag=None,
                     headers=None) -> None:
        asked = handler.headers.get("Range")
        parsed = parse_range(asked, len(data)) if asked and method == "GET" and asked.strip() != "bytes=0-0" else None
        if not isinstance(parsed, tuple):
            super().send_content(handler, method, path, data, etag=etag, headers=headers)
            return
        first = self.place(parsed[0], len(data))
        with self._counter_lock:
            self.misplaced += 1
        last = parsed[1]  # the asked end is kept: only the start is misplaced
        body = memoryview(data)[first or 0:last + 1]
        handler.send_response(206)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("ETag", etag or sha256_etag(data))
        handler.send_header("Accept-Ranges", "bytes")
        if first is not None:
            handler.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        handler.end_headers()
        self._write_body(handler, path, body)


class LoginWallServer(FileServer):
    """See the module docstring."""

    def __init__(self, *args, walled: str = "/d/", attachment: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.walled = walled
        self.attachment = attachment

    def dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        if handler.path.startswith(self.walled):
            with self._counter_lock:
                self.requests += 1
            headers = {"Content-Disposition": 'attachment; filename="page.html"'} if self.attachment else {}
            self.reply(handler, 200, LOGIN_PAGE, content_type="text/html; charset=utf-8", headers=headers,
                       head=method == "HEAD")
            return
        super().dispatch(handler, method)


class WeakETagServer(FileServer):
    """See the module docstring."""

    LAST_MODIFIED = "Tue, 01 Jul 2025 08:00:00 GMT"

    def send_content(self, handler: BaseHTTPRequestHandler, method: str, path: str, data: bytes, *, etag=None,
                     headers=None) -> None:
        if_range = handler.headers.get("If-Range")
        if if_range is not None:
            del handler.headers["If-Range"]
            if if_range.strip() != self.LAST_MODIFIED:  # a weak tag never matches: the Range is ignored
                del handler.headers["Range"]
        super().send_content(handler, method, path, data, etag="W/" + sha256_etag(data),
                             headers={"Last-Modified": self.LAST_MODIFIED, **(headers or {})})
