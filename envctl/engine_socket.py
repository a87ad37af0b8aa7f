"""GET requests to the local Docker engine over its unix socket, with the standard library alone
(http.client), for the quick paths of `up` and `status` (envctl/quick_up.py,
envctl/quick_status.py), which must answer without importing docker-py and requests; and
requests pipelined on one connection (Pipelined) where an SSH forward makes each a round trip:
the plan's rounds (observe_engine._Rounds), a new container's start with its first exec
(lifecycle._start_then_exec).

Only an engine reached through a unix socket is asked: DOCKER_HOST unset (the default socket,
/var/run/docker.sock, as envctl.engine.connect uses it) or `unix://PATH`. Any other DOCKER_HOST
(tcp://, ssh://, TLS settings) is left to docker-py: `socket_path` says None and the caller
takes the full path.

Paths carry no API version: the engine answers in its own (newest) version, which is the one
docker-py negotiates too (docker.APIClient with version None asks `/version` and uses its
ApiVersion), so the fields read here are the ones the full path reads. Engine API reference:
https://docs.docker.com/reference/api/engine/ (ContainerList, ContainerInspect, ContainerTop,
ImageInspect, ImageList).
"""

from __future__ import annotations

import io
import json
import socket
from typing import Mapping, Sequence
from urllib.parse import quote, urlencode

DEFAULT_SOCKET = "/var/run/docker.sock"  # envctl.engine.DEFAULT_SOCKET (not imported: it imports docker-py)
TIMEOUT = 10.0  # seconds for connecting and for each answer; a quick path that waits longer gives up


class EngineUnanswered(Exception):
    """The engine could not be asked, or answered something other than JSON: the caller takes
    the full path, which says what is wrong. `answered`: how many of a Pipelined round's answers
    were read before it failed."""

    answered = 0
    timed_out = False  # no answer within the connection's silence (an engine that hangs), not a refusal


def socket_path(environ: Mapping[str, str]) -> str | None:
    """The unix socket the engine is reached through, as envctl.engine.connect reaches it (the
    default socket when DOCKER_HOST is unset or empty); None for any other DOCKER_HOST."""
    host = environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    if not host.startswith("unix://"):
        return None
    path = host[len("unix://"):]
    return path if path.startswith("/") else None


def _unix_connection(path: str):
    """An http.client connection to the unix socket at `path`. http.client (with the email
    package it parses headers with: ~30 ms of imports here) is imported where it is used, so
    that Pipelined sends its requests before it loads: through an SSH forward its import then
    overlaps their round trip."""
    import http.client

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self):
            super().__init__("localhost", timeout=TIMEOUT)  # the Host header docker-py sends over a socket too

        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(path)

    return UnixConnection()


class Engine:
    """One connection to the engine at a unix socket, kept open for a few requests
    (HTTP/1.1 keep-alive). Use as a context manager."""

    def __init__(self, path: str):
        self._connection = _unix_connection(path)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *_exc) -> None:
        self._connection.close()

    def get(self, path: str, query: Mapping[str, str] | None = None):
        """(HTTP status, the JSON answer) of `GET path?query`; `path` is sent as given (quote a
        name in it with `quoted`). Raises EngineUnanswered when the socket cannot be reached, the
        answer is cut or is not JSON."""
        import http.client

        target = path + (f"?{urlencode(query)}" if query else "")
        try:
            self._connection.request("GET", target)
            answer = self._connection.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            raise EngineUnanswered(f"GET {target}: {exc}") from None
        try:
            return answer.status, json.loads(body) if body else None
        except ValueError:
            raise EngineUnanswered(f"GET {target}: the answer is not JSON") from None


def hook_trace(api, method: str = "GET"):
    """A Pipelined trace that tells docker-py's response hooks of `api` (its APIClient) of each
    request, as its own requests tell them (ENVCTL_SSH_TRACE: envctl/hosts/ssh.py engine)."""
    from types import SimpleNamespace

    def trace(target: str) -> None:
        answer = SimpleNamespace(request=SimpleNamespace(method=method, path_url=target))
        for hook in api.hooks.get("response", ()):
            hook(answer)

    return trace


def socket_of(client) -> tuple[object, str | None]:
    """(docker-py's APIClient, the unix socket it talks to, or None) of a client: docker-py's
    DockerClient or envctl's engine wrapper around one (envctl/engine.py `raw`)."""
    api = getattr(getattr(client, "raw", client), "api", None)
    path = getattr(getattr(api, "_custom_adapter", None), "socket_path", None)
    return api, path if isinstance(path, str) else None


def quoted(name: str) -> str:
    """A name (an image ref, a container name) as a path segment, quoted as docker-py quotes it
    (`/` and `:` kept: the engine's routes take `/images/{name}/json` with both)."""
    return quote(name, safe="/:")


def filters(**wanted: list[str]) -> str:
    """The `filters` query parameter: a JSON map of lists (docker-py's convert_filters)."""
    return json.dumps(wanted)


RAW = "raw"  # a Pipelined target whose answer is bytes, not JSON


class Pipelined:
    """One HTTP/1.1 connection to an engine's unix socket on which several requests (GETs; POSTs
    with `send_post`) are sent at once and their answers read in order (http.client reads each answer; it sends one
    request at a time itself): one round trip for all of them through an SSH forward, where the
    engine (Go's net/http) answers pipelined requests in order. `trace(target)` is called for
    each answer read. Use as a context manager."""

    def __init__(self, path: str, trace=None, silence: float = TIMEOUT):
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(silence)  # per send and receive: from the last byte on
        self._path, self._reader, self._trace = path, None, trace
        self._unread: list[tuple[str, bool]] = []  # ("METHOD path", as bytes) of each request sent, answer not read yet
        # The requests sent ahead of a round that may ask for them (SSHHost.ask_ahead), and the
        # API version the engine answered /version with on this connection (SSHHost).
        self.ahead: list | None = None
        self.engine_version: str | None = None

    def __enter__(self) -> "Pipelined":
        return self

    def __exit__(self, *_exc) -> None:
        self._socket.close()

    def makefile(self, *_args, **_kwargs):
        """For http.client.HTTPResponse: every answer is read from the one buffer, which must
        outlive each answer (they may share a read)."""
        return self._reader

    def get(self, targets: Sequence[tuple]) -> list[tuple[int, object]]:
        """(HTTP status, the JSON answer) of `GET path?query` for each (path, query), in order;
        for a (path, query, RAW) the answer's bytes when it is 200 (an archive: a tar stream),
        its JSON otherwise (the engine's error). Raises EngineUnanswered when the socket cannot
        be reached, an answer is cut or is not JSON, the engine closes the connection before the
        last, or nothing moves on the connection for `silence` seconds. Answers sent for before
        (`send`) and not read yet are read first and left out."""
        if not targets:
            return []
        self.read(len(self._unread))
        self.send(targets)
        return self.read(len(targets))

    def send(self, targets: Sequence[tuple]) -> None:
        """Send `GET path?query` for each (path, query[, RAW]) now, behind the requests sent
        before; their answers are read by `read`, in order. Safe on one thread while another
        reads the answers sent for before. Raises EngineUnanswered as `get`."""
        paths = [target[0] + (f"?{urlencode(target[1])}" if target[1] else "") for target in targets]
        self._send(b"".join(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                            "Accept-Encoding: identity\r\n\r\n".encode() for path in paths),
                   [(f"GET {path}", len(target) > 2 and target[2] == RAW) for path, target in zip(paths, targets)])

    @property
    def unread(self) -> int:
        """How many requests were sent whose answers were not read."""
        return len(self._unread)

    def send_post(self, path: str, body: dict | None = None) -> None:
        """Send `POST path` (with `body` as JSON) behind the requests sent before, as `send`
        does; its answer is read by `read` (JSON, or None for an empty one: 204)."""
        data = json.dumps(body).encode() if body is not None else b""
        head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: identity\r\n" + \
               ("Content-Type: application/json\r\n" if body is not None else "") + f"Content-Length: {len(data)}\r\n\r\n"
        self._send(head.encode() + data, [(f"POST {path}", False)])

    def _send(self, data: bytes, requests: list[tuple[str, bool]]) -> None:
        """Connect when not yet, send `data` (the `requests`: ("METHOD path", as bytes) each)
        and count their answers as unread. Raises EngineUnanswered (the connection then out of
        step: part of them may have gone)."""
        try:
            if self._reader is None:
                self._socket.connect(self._path)
                self._reader = _Kept(socket.SocketIO(self._socket, "rb"))
            self._socket.sendall(data)
        except OSError as exc:
            self._out_of_step()
            raise EngineUnanswered(f"{requests[0][0]}: {exc}") from None
        self._unread.extend(requests)

    def read(self, count: int, shown=None) -> list[tuple[int, object]]:
        """The answers of the first `count` requests sent and not read yet, as `get` gives
        them; `shown(path)`: the path the trace is given for each (default: as sent). Raises
        EngineUnanswered as `get`, with `answered` counting the answers read here."""
        # Taken one by one from the front (each pop atomic): `send` may append on another thread
        # meanwhile (SSHHost.ask_ahead, while /version's answer is read).
        reading = [self._unread.pop(0) for _ in range(min(count, len(self._unread)))]
        if not reading:
            return []
        import http.client  # once the requests are on their way (_unix_connection says why)

        answers: list[tuple[int, object]] = []
        try:
            for request, as_bytes in reading:
                path = request.split(" ", 1)[1]
                if self._trace is not None:
                    self._trace(shown(path) if shown is not None else path)
                answer = http.client.HTTPResponse(self, method="GET")
                answer.begin()
                body = answer.read()
                if as_bytes and answer.status == 200:
                    answers.append((200, body))
                else:
                    answers.append((answer.status, json.loads(body) if body else None))
                if answer.will_close and (len(answers) < len(reading) or self._unread):  # this one answered, the rest never will
                    raise EngineUnanswered(f"{request}: the engine closed the connection")
        except (OSError, http.client.HTTPException, ValueError, EngineUnanswered) as exc:
            failed = exc if isinstance(exc, EngineUnanswered) else \
                EngineUnanswered(f"{reading[min(len(answers), len(reading) - 1)][0]}: {exc}")
            failed.answered = len(answers)
            failed.timed_out = failed.timed_out or isinstance(exc, TimeoutError)  # socket.timeout is TimeoutError
            self._out_of_step()
            raise failed from None
        return answers

    def settimeout(self, seconds: float) -> None:
        """From now on, wait at most `seconds` for each send and each answer's next bytes."""
        self._socket.settimeout(seconds)

    def _out_of_step(self) -> None:
        """After a send or read that failed midway: which answer comes next is not known, so
        nothing more is sent or read on this connection (every later use raises EngineUnanswered,
        having read nothing)."""
        self._unread.clear()
        self._socket.close()


# One connection per forwarded socket; each dict operation is atomic (the GIL), which is all the
# two threads that use it need: the version's thread keeps, the command's takes.
_KEPT: dict[str, Pipelined] = {}


def keep(path: str, connection: Pipelined) -> None:
    """Leave `connection` (connected to the socket at `path`) open for the next `reused(path)`
    to take: through an SSH forward, each new connection is a channel the master opens on the
    server first, one round trip before its first request is sent. Every answer on it was read
    but those of the requests sent ahead for the taker (`ahead`: SSHHost.ask_ahead), which the
    taker reads first. One is kept per path; one kept before is closed."""
    before = _KEPT.pop(path, None)
    _KEPT[path] = connection
    if before is not None:
        before.__exit__(None, None, None)


def reused(path: str, trace=None) -> Pipelined | None:
    """The connection kept for `path` (keep), now the caller's with `trace` as its trace, or
    None. The engine may have closed it since: a get on it then raises EngineUnanswered, and
    the caller asks again on a new one."""
    connection = _KEPT.pop(path, None)
    if connection is not None:
        connection._trace = trace
    return connection


class _Kept:
    """A buffered reader of the socket that an answer's close leaves open."""

    def __init__(self, raw):
        self._buffer = io.BufferedReader(raw)

    def __getattr__(self, name):
        return getattr(self._buffer, name)

    def close(self) -> None:
        pass  # the connection closes with Pipelined
