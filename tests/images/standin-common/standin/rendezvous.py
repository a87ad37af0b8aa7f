"""Where the stand-in launchers of several nodes meet, as the real ones meet before a worker runs:
torch's static rendezvous (a TCPStore on the node of rank 0, at --master_port, that every other
node's agent connects to at --master_addr; torch/distributed/elastic/rendezvous/static_tcp_rendezvous.py),
the workers' own TCPStore rendezvous for DeepSpeed's launcher (torch.distributed's env:// init at
MASTER_ADDR:MASTER_PORT, served by global rank 0), and msrun's scheduler (started on the node
that owns --master_addr, waiting for --worker_num workers; mindspore/parallel/cluster/process_entity/_api.py).

The node that serves listens on the master port; every other node connects to the master address
and port, retrying until the timeout (a master that is not there yet is normal: nodes start in
any order). Each node sends what it was given (one JSON line); when all have come, the server
checks that they agree and answers every node with all of them, or with the disagreement. What
the real launchers do on such a disagreement is mostly to wait until a timeout; the stand-in
says at once what is wrong, naming the nodes.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable


class RendezvousError(Exception):
    """The nodes did not meet, or do not agree (the message says which)."""


def is_local_address(address: str) -> bool:
    """Whether this network namespace owns `address` (msrun's _is_local_ip asks `ip addr`; binding
    to it answers the same question without iproute2)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
        return True
    except OSError:
        return False


def _line(conn: socket.socket, deadline: float) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = conn.recv(65536)
        if not chunk:
            raise RendezvousError("a node closed the rendezvous connection before it spoke")
        data += chunk
    return json.loads(data)


def serve(port: int, me: dict, complete: Callable[[list[dict]], bool], check: Callable[[list[dict]], str | None],
          timeout: float, what: str, bind: str = "") -> list[dict]:
    """Listen on `port` until `complete(nodes so far)`; then `check` them (an error message or
    None) and answer every node. Returns every node's dict, this node's first."""
    deadline = time.monotonic() + timeout
    nodes, peers = [me], []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:  # with SO_REUSEADDR two servers may both bind; the second then fails at listen
            server.bind((bind, port))
            server.listen(64)
        except OSError as exc:
            raise RendezvousError(f"{what}: cannot listen on port {port}: {exc.strerror}") from None
        try:
            while not complete(nodes):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RendezvousError(f"{what}: timed out after {timeout:.0f}s waiting for the other nodes; "
                                          f"{len(nodes)} joined: {json.dumps(nodes)}")
                server.settimeout(left)
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                peers.append(conn)
                nodes.append(_line(conn, deadline))
            problem = check(nodes)
            answer = {"error": problem} if problem else {"nodes": nodes}
            for conn in peers:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            for conn in peers:  # until each peer closes: the TIME_WAIT stays on its side, not on the master port
                conn.settimeout(5)
                try:
                    conn.recv(1)
                except OSError:
                    pass
        finally:
            for conn in peers:
                conn.close()
    if problem:
        raise RendezvousError(f"{what}: {problem}")
    return nodes


def join(address: str, port: int, me: dict, timeout: float, what: str) -> list[dict]:
    """Connect to the serving node (retrying until the timeout), send `me`, return every node's
    dict as the server answered (the server's first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = socket.create_connection((address, port), timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            break
        except OSError:
            if time.monotonic() >= deadline:
                # torch's words for it: c10d/TCPStore's client timeout
                raise RendezvousError(f"{what}: The client socket has timed out after {timeout:.0f}s while trying to "
                                      f"connect to ({address}, {port}).") from None
            time.sleep(0.2)
    with conn:
        conn.sendall(json.dumps(me).encode() + b"\n")
        try:
            answer = _line(conn, deadline)
        except (TimeoutError, OSError):
            raise RendezvousError(f"{what}: no answer from the master at {address}:{port} within {timeout:.0f}s") from None
    if "error" in answer:
        raise RendezvousError(f"{what}: {answer['error']}")
    return answer["nodes"]


def fail(error: RendezvousError) -> None:
    print(f"[stand-in] {error}", file=sys.stderr)
    sys.exit(1)
