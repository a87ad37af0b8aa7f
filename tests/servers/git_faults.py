"""Servers on 127.0.0.1 that fail a git fetch the ways real ones and real networks do.

- `StatusServer(status)`: every request answers `status` with a short text body (a 403 from a
  GitLab that forbids the user, a 500 from a broken Gitea, a 502 from a proxy).
- `SilentServer`: accepts TCP connections and never sends a byte (a stalled proxy, a firewall
  that lets the handshake through); a client waits until its own timeout.
- `HangupServer`: accepts and closes before any answer, as a load balancer whose backend is
  gone: at once (a reset), or after reading the request (curl: "Empty reply from server").
- `TLSGitHTTPServer`: `GitHTTPServer` behind TLS with a self-signed certificate for 127.0.0.1
  made by `openssl req -x509` (`cert` is its PEM file); a client that checks certificates
  refuses it unless told to trust that file (GIT_SSL_CAINFO).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from ._background import BackgroundHTTPServer
from .git_http import GitHTTPServer


class StatusServer(BackgroundHTTPServer):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status
        self.requests = 0

    def dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        self.requests += 1
        body = f"status {self.status}\n".encode()
        handler.send_response(self.status)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


class _TCPServer:
    """A listening socket whose accepted connections `_serve` handles, in a background thread."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name=type(self).__name__)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.accepted += 1
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class SilentServer(_TCPServer):
    def _serve(self, conn: socket.socket) -> None:
        self._held.append(conn)  # open, never answered, closed at exit


class HangupServer(_TCPServer):
    """`read_request=False`: closed with the request unread, which the kernel answers with a
    reset (curl: "Recv failure: Connection reset by peer"); True: the request is read first,
    then the connection closed cleanly (curl: "Empty reply from server")."""

    def __init__(self, read_request: bool = False) -> None:
        super().__init__()
        self.read_request = read_request

    def _serve(self, conn: socket.socket) -> None:
        if self.read_request:
            conn.settimeout(5)
            seen = b""
            try:
                while b"\r\n\r\n" not in seen:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    seen += chunk
            except OSError:
                pass
        conn.close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for CN and subjectAltName 127.0.0.1, valid for a day."""
    cert, key = directory / "server.pem", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class TLSGitHTTPServer(GitHTTPServer):
    def __init__(self, root: str | Path, directory: Path, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.cert, self._key = self_signed(directory)

    def start(self):
        if self._httpd is None:
            super().start()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert, self._key)
            # Accepted connections are TLS; a handshake the client aborts (it refused the
            # certificate) fails in accept, which the server loop drops.
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        return self

    @property
    def url(self) -> str:
        return super().url.replace("http://", "https://", 1)
