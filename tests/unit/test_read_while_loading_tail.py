"""envctl/images.py _Copying: a tarball read while it loads sends nothing from its end-of-archive
blocks on before the check, whatever follows them. Its pieces go through the real sender
(_Sender on one end of a socket pair, a thread reading the other) and _HeldTail, which sends
every piece before the last with a byte other than zero: other bytes after the archive's end
must not make the piece holding the end one of those."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading

import pytest

from envctl.images import SEND_CHUNK, _Copying, _HeldTail, _Sender
from envctl.tarballs import _stream_members


def _tar(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("layer.tar")
        info.size = size
        archive.addfile(info, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()


def _send(stream: bytes, release: bool) -> tuple[bytes, int]:
    """What reaches the engine's end of the socket: before the check (`release` False) or after
    it; and the offset of the archive's end-of-archive blocks."""
    ours, engines = socket.socketpair()
    received = bytearray()

    def drain():
        while piece := engines.recv(1 << 20):
            received.extend(piece)

    reader = threading.Thread(target=drain)
    reader.start()
    sender = _Sender(ours)
    sender.start()
    tail = _HeldTail(sender)
    copying = _Copying(io.BytesIO(stream), sender, tail)
    _members, end = _stream_members(copying)
    copying.finish(end + 1024)
    if release:
        tail.release()
    sender.full.put(None)
    sender.join()
    ours.shutdown(socket.SHUT_WR)
    reader.join()
    ours.close()
    engines.close()
    return bytes(received), end


# Archive sizes putting its end early in a piece, in its middle, and in its last 64 KiB (the
# piece tarfile's read-ahead fills and hands over); after it, zeros or other bytes past a piece.
@pytest.mark.parametrize("member", [SEND_CHUNK + 1000, SEND_CHUNK + SEND_CHUNK // 2, 2 * SEND_CHUNK - 20_000])
@pytest.mark.parametrize("after", [b"", bytes(3 * SEND_CHUNK), b"\x01" * (2 * SEND_CHUNK + 7)])
def test_nothing_from_the_archive_s_end_on_is_sent_before_the_check(member, after):
    archive = _tar(member)
    sent, end = _send(archive + after, release=False)
    assert archive[end:end + 1024] == bytes(1024)  # where the end-of-archive blocks begin
    assert len(sent) <= end
    assert sent == archive[:len(sent)]


@pytest.mark.parametrize("after", [b"", b"\x01" * (2 * SEND_CHUNK + 7)])
def test_after_the_check_the_archive_goes_whole_and_what_follows_its_end_does_not(after):
    archive = _tar(SEND_CHUNK + 1000)
    sent, end = _send(archive + after, release=True)
    assert sent == archive[:end + 1024]
