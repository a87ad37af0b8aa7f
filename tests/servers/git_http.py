"""`GitHTTPServer`: git's own smart HTTP server (`git http-backend`, as a CGI program) on
127.0.0.1, behind HTTP Basic auth, as a private GitLab/Gitea/GitHub repository is served.

- Repositories are the bare repositories directly under `root` (`<url>/<name>.git`).
- `require_auth=(user, password)`: every request without exactly that Basic auth answers 401
  with `WWW-Authenticate: Basic` (git then asks for credentials, or fails without a prompt).
  A request with other credentials is refused too and counted in `refused`.
- `authorizations`: the `Authorization` header of every request, as sent (None if absent), so a
  test can tell what git sent.

The backend runs with `GIT_HTTP_EXPORT_ALL` and the request's method, path, query, content
type and encoding, as git-http-backend(1) documents for CGI; request bodies sent chunked (git
does this for large pushes and fetch negotiations) are de-chunked first.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._background import BackgroundHTTPServer


def _backend() -> str:
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


class GitHTTPServer(BackgroundHTTPServer):
    """See the module docstring for the contract."""

    def __init__(self, root: str | Path, *, require_auth: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.root = Path(root).resolve()
        self.require_auth = require_auth
        self.authorizations: list[str | None] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._backend = _backend()

    def dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        body = self._read_body(handler)
        given = handler.headers.get("Authorization")
        with self._lock:
            self.authorizations.append(given)
        if self.require_auth is not None:
            user, password = self.require_auth
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if given != expected:
                with self._lock:
                    self.refused += 1 if given else 0
                self._send(handler, 401, {"WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain"},
                           b"authentication required\n")
                return
        split = urlsplit(handler.path)
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": method,
            "PATH_INFO": unquote(split.path),
            "QUERY_STRING": split.query,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": self.require_auth[0] if self.require_auth else "",
            "REMOTE_ADDR": "127.0.0.1",
        }
        for header, variable in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "GIT_PROTOCOL")):
            if handler.headers.get(header):
                environ[variable] = handler.headers[header]
        done = subprocess.run([self._backend], input=body, capture_output=True, env=environ, timeout=120)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = done.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        self._send(handler, status, headers, payload)

    @staticmethod
    def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    return b"".join(parts)
                parts.append(handler.rfile.read(size))
                handler.rfile.readline()
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict, body: bytes) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if body:
            handler.wfile.write(body)
