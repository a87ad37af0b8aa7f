"""envctl/images.py _tail_start: where the tail a verified load holds back begins, the last
512-byte block with a byte other than zero (the zeros after a tar's last member, and any
padding, are never all that is held back)."""

from __future__ import annotations

import pytest

from envctl.images import CHUNK, _tail_start


def _at(tmp_path, data: bytes) -> int:
    path = tmp_path / "t"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        return _tail_start(handle, len(data))


@pytest.mark.parametrize("data, start", [
    (b"", 0),
    (bytes(3 * CHUNK), 0),  # zeros only: everything is held back
    (b"x", 0),
    (bytes(512) + b"x", 512),
    (bytes(1023) + b"x", 512),  # the block of the last byte other than zero
    (bytes(1024) + b"x" + bytes(1024), 1024),  # then two zero blocks, as a tar ends
    (bytes(CHUNK - 1) + b"x" + bytes(2 * CHUNK + 5), CHUNK - 512),  # found across pieces read backwards
    (b"x" + bytes(2 * CHUNK), 0),
])
def test_the_tail_begins_at_the_last_block_with_a_byte_other_than_zero(tmp_path, data, start):
    assert _at(tmp_path, data) == start
