"""Added latency on a lab host's link, for tests of slow and far-away servers.

Two ways, same effect: every packet entering and every packet leaving the host's eth0 is held
back `ms` milliseconds, so a round trip between the test process and that host takes about
2 x ms longer (a TCP connect, one SSH request/response, a ping). Bulk throughput is limited by
the window over the longer round trip, as on a real far link.

- netem (`tc qdisc ... netem delay`) where the kernel has sch_netem: on the host's eth0 (its
  outgoing packets) and on the switch port facing it (its incoming packets).
- Otherwise NFQUEUE: in the lab's switch namespace (where every host's wire meets the others),
  iptables FORWARD rules send the bridged packets to and from the host's port to a queue
  served by a small daemon (this file run as a script in that namespace) that gives each packet
  its ACCEPT verdict `ms` after it arrived. Used on kernels built without netem (such as the
  test VM's). Queueing forwarded packets, not the host's own, matters: a packet held in the
  sender's namespace still counts against its socket (TCP small queues) and throttles bulk
  transfers to a trickle, which netem avoids by orphaning packets. The rules carry
  --queue-bypass, so packets flow undelayed, never dropped, when the daemon is gone.

The daemon speaks nfnetlink_queue directly over a netlink socket (no libnetfilter_queue): it
binds a queue in "metadata only" copy mode and answers with batch verdicts ("accept every packet
up to id N"), which is right because a constant delay releases packets in arrival order, and
which also releases packets whose notification was lost when the socket overflowed.
"""

from __future__ import annotations

import collections
import errno
import os
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQA_CFG_F_GSO = 1 << 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
QUEUE_MAXLEN = 65536


def _attr(kind: int, payload: bytes) -> bytes:
    header = struct.pack("=HH", 4 + len(payload), kind)
    return header + payload + b"\0" * (-len(payload) % 4)


def _message(kind: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    # nfgenmsg: family, version (NFNETLINK_V0), resource id = queue number in network order
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack(">H", queue) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def _configure(sock: socket.socket, queue: int) -> None:
    """Bind the queue, ask for metadata only, raise its length, and take GSO packets whole;
    each request is acknowledged. Without NFQA_CFG_F_GSO the kernel cuts every GSO packet into
    MTU-sized ones before queueing them (nfqnl_enqueue_packet), so a bulk transfer costs this
    daemon a verdict per 1.5 kB and the machine that segmentation; netem holds GSO packets whole,
    and so does the daemon with the flag. A kernel that refuses the flag gets segmented packets:
    slower, the same delay."""
    requests = [
        (_attr(NFQA_CFG_CMD, struct.pack(">BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)), True),
        (_attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META)), True),
        (_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", QUEUE_MAXLEN)), True),
        (_attr(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_GSO)) + _attr(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_GSO)),
         False),
    ]
    for seq, (attrs, needed) in enumerate(requests, start=1):
        sock.send(_message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        reply = sock.recv(65536)
        length, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", reply, 16)
            if code != 0 and needed:
                raise OSError(-code, f"nfnetlink_queue config #{seq}: {os.strerror(-code)}")


def _packet_ids(data: bytes):
    """Packet ids of the NFQNL_MSG_PACKET messages in one netlink read."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pos, end = offset + 20, offset + length  # nlmsghdr (16) + nfgenmsg (4)
            while pos + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, pos)
                if alen < 4:
                    break
                if atype & 0x3FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from(">I", data, pos + 4)[0]
                    break
                pos += (alen + 3) & ~3
        offset += (length + 3) & ~3


def serve(queue: int, delay_ms: float) -> None:
    """Hold every packet of `queue` for `delay_ms`, forever (until killed)."""
    delay = delay_ms / 1000.0
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    # A large receive buffer: under load many notifications wait here for their time.
    sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE (root)
    sock.bind((0, 0))
    _configure(sock, queue)
    sock.setblocking(False)
    print("ready", flush=True)
    pending: collections.deque[tuple[float, int]] = collections.deque()  # (due, id), arrival order
    while True:
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            while True:
                try:
                    data = sock.recv(1 << 20)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:  # notifications lost; the batch verdict below
                        continue                    # still releases those packets
                    raise
                now = time.monotonic()
                pending.extend((now + delay, packet_id) for packet_id in _packet_ids(data))
        now, last = time.monotonic(), None
        while pending and pending[0][0] <= now:
            last = pending.popleft()[1]
        if last is not None:
            verdict = _attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, last))
            sock.send(_message(NFQNL_MSG_VERDICT_BATCH, queue, verdict))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: sshlab_delay.py QUEUE DELAY_MS  (inside the lab's switch network namespace)")
    serve(int(sys.argv[1]), float(sys.argv[2]))
