"""A threaded HTTP server on 127.0.0.1 that runs in a background thread and stops in bounded time.

Contract:

- `start()` binds 127.0.0.1 on an ephemeral port and serves from a background thread until
  `stop()`; `url` is then `http://127.0.0.1:<port>`. The object is a context manager.
- `stop()` returns within `STOP_TIMEOUT` seconds even while clients hold keep-alive connections
  open or a response is being paced: it sets `stopping` (pacing code waits on it instead of
  sleeping), ends the accept loop, shuts down every open connection socket and joins the
  connection threads against one deadline. A thread still alive after that is reported by a
  RuntimeError rather than left to leak into later tests.
- Subclasses implement `dispatch(handler, method)`; the handler is a `BaseHTTPRequestHandler`
  speaking HTTP/1.1 whose `server.owner` is this object.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOP_TIMEOUT = 5.0
# An idle keep-alive connection is dropped after this long, so a forgotten client cannot pin a
# handler thread for the whole session even when stop() is never reached.
IDLE_TIMEOUT = 30.0


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: keep-alive and Content-Length semantics like a real file server or CDN, which is
    # what makes a truncated body observable as a short read rather than a normal EOF.
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def do_GET(self) -> None:
        self.server.owner.dispatch(self, "GET")

    def do_HEAD(self) -> None:
        self.server.owner.dispatch(self, "HEAD")

    def do_POST(self) -> None:
        self.server.owner.dispatch(self, "POST")

    def log_message(self, format: str, *args) -> None:
        # Quiet: the owner records every request itself and tests assert on that record.
        pass


class _TrackingServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections and their threads."""

    daemon_threads = True
    # socketserver's own close joins threads without a deadline; stop() joins them itself.
    block_on_close = False

    def __init__(self, owner: BackgroundHTTPServer) -> None:
        self.owner = owner
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        super().__init__((owner.address, 0), _Handler)

    def process_request(self, request, client_address) -> None:
        worker = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{type(self.owner).__name__}-conn-{client_address[1]}",
            daemon=True,
        )
        with self._lock:
            self._connections.add(request)
            self._workers.add(worker)
        worker.start()

    def _serve_connection(self, request, client_address) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)
                self._workers.discard(threading.current_thread())

    def handle_error(self, request, client_address) -> None:
        # Clients that hang up mid-response (truncation tests, parallel downloads, stop())
        # are expected; anything else is a bug in the server and must be visible.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)) or self.owner.stopping.is_set():
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> list[threading.Thread]:
        with self._lock:
            connections = list(self._connections)
            workers = list(self._workers)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        return workers


class BackgroundHTTPServer:
    """Base for the loopback HTTP servers; see the module docstring for the contract."""

    # Where it listens. The SSH lab's tests set the test process's own address on the lab
    # network (never anything outside this machine), so that lab hosts can download from it.
    address = "127.0.0.1"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._httpd: _TrackingServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self):
        if self._httpd is not None:
            return self
        self.stopping.clear()
        self._httpd = _TrackingServer(self)
        self._thread = threading.Thread(
            # A short poll interval keeps stop() fast: shutdown() waits for the loop to notice.
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-accept",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        self.stopping.set()
        httpd.shutdown()
        workers = httpd.close_connections()
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        httpd.server_close()
        thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [w.name for w in workers if w.is_alive()]
        if stuck:
            raise RuntimeError(
                f"{type(self).__name__}: connection threads still running after stop(): {stuck}"
            )

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:41234."""
        return f"http://{self.address}:{self.port}"

    # -- to implement ----------------------------------------------------------------------

    def dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError
