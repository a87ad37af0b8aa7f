"""`FTPServer`: a real pyftpdlib FTP server on 127.0.0.1, read-only, in a background thread.

Contract:

- Serves `root` (a directory) or `files` (relative path -> bytes, written under a private
  temporary directory that is removed on stop) to one user, `user`/`password`; anonymous login is
  refused unless `anonymous=True`. Permissions are read-only ("elr": cd, list, retrieve), so
  STOR/DELE/MKD answer 550.
- REST works as pyftpdlib implements it: `REST n` then `RETR` sends the file from byte n.
- `rate_per_connection=N` paces every data connection to about N bytes/s (pyftpdlib's
  ThrottledDTPHandler); it is read when a transfer starts, so it may change between transfers.
- Counters: `bytes_sent` (file bytes sent by RETR, counted as they are written, complete or
  aborted transfers alike), `retrievals`: one
  `Retrieval(path, offset, bytes, completed)` per finished RETR (path relative to the home
  directory, offset the REST position), `logins`. `reset_counters()` clears them.
- `start()`/`stop()` or a context manager; `stop()` returns within a few seconds and disconnects
  clients. `host`, `port` and `url` ("ftp://127.0.0.1:<port>") are valid while running.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler
from pyftpdlib.servers import ThreadedFTPServer

READ_ONLY = "elr"


class Retrieval(NamedTuple):
    path: str
    offset: int
    bytes: int
    completed: bool


class _Server(ThreadedFTPServer):
    # Worker threads check for shutdown once per poll; the default (1 s) makes stop() slow.
    poll_timeout = 0.1
    join_timeout = 3


class FTPServer:
    """See the module docstring for the contract."""

    def __init__(
        self,
        root: str | Path | None = None,
        files: Mapping[str, bytes] | None = None,
        *,
        user: str = "user",
        password: str = "secret",
        anonymous: bool = False,
        rate_per_connection: int | None = None,
    ) -> None:
        if (root is None) == (files is None):
            raise ValueError("give exactly one of root= or files=")
        self._files = dict(files) if files is not None else None
        self._root = Path(root) if root is not None else None
        self._tmp: str | None = None
        self.user, self.password, self.anonymous = user, password, anonymous
        self.rate_per_connection = rate_per_connection
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.reset_counters()

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_sent = 0
            self.retrievals: list[Retrieval] = []
            self.logins = 0

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("FTPServer is not running")
        return self._root

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FTPServer:
        if self._server is not None:
            return self
        if self._files is not None:
            self._tmp = tempfile.mkdtemp(prefix="ftp-root-")
            self._root = Path(self._tmp)
            for rel, data in self._files.items():
                target = self._root / rel.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        authorizer = DummyAuthorizer()
        authorizer.add_user(self.user, self.password, str(self._root), perm=READ_ONLY)
        if self.anonymous:
            authorizer.add_anonymous(str(self._root), perm=READ_ONLY)
        self._server = _Server(("127.0.0.1", 0), self._handler_class(authorizer))
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="FTPServer", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        server = self._server
        # Non-blocking loop turns so the stop flag is seen; close_all() must run on this thread,
        # the one that owns pyftpdlib's IO loop.
        while not self._stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    def stop(self) -> None:
        if self._server is None:
            return
        self._stop.set()
        self._thread.join(10)
        alive = self._thread.is_alive()
        self._server = self._thread = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._root = None
        if alive:
            raise RuntimeError("FTPServer: server thread still running after stop()")

    def __enter__(self) -> FTPServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FTPServer is not running")
        return self._server.address[1]

    @property
    def url(self) -> str:
        return f"ftp://127.0.0.1:{self.port}"

    # -- pyftpdlib wiring ------------------------------------------------------------------

    def _handler_class(self, authorizer: DummyAuthorizer) -> type[FTPHandler]:
        owner = self

        class DTP(ThrottledDTPHandler):
            def __init__(self, sock, cmd_channel):
                # Read per transfer, so a test can change the rate between transfers.
                self.write_limit = owner.rate_per_connection or 0
                super().__init__(sock, cmd_channel)

            def send(self, data):
                sent = super().send(data)
                # Counted as it goes (not only at the end) so a test can watch a paced transfer;
                # file bytes only: a RETR sets file_obj before pushing data, a listing never does
                # (`cmd` would be the obvious test, but pyftpdlib may set it after sending starts).
                if self.file_obj is not None and not self.receive:
                    with owner._lock:
                        owner.bytes_sent += sent
                return sent

            def close(self):
                # One record per transfer, when it ends (complete or aborted).
                if not self._closed and not self.receive and self.file_obj is not None:
                    owner._record(
                        self.cmd_channel, self.file_obj.name, self.tot_bytes_sent, self.transfer_finished
                    )
                super().close()

        class Handler(FTPHandler):
            dtp_handler = DTP
            banner = "envctl test FTP server"
            # Loopback only: bind passive data ports on the control connection's address.
            permit_foreign_addresses = False
            # pyftpdlib delays the reply to a failed login by 3 s; tests check refusals quickly.
            auth_failed_timeout = 0

            def ftp_RETR(self, file):
                self._retr_offset = self._restart_position
                return super().ftp_RETR(file)

            def on_login(self, username):
                with owner._lock:
                    owner.logins += 1

        Handler.authorizer = authorizer
        return Handler

    def _record(self, handler: FTPHandler, filename: str, sent: int, completed: bool) -> None:
        try:
            rel = Path(filename).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            rel = filename
        with self._lock:
            self.retrievals.append(Retrieval(rel, getattr(handler, "_retr_offset", 0), sent, completed))
