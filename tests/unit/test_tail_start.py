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


def _tar(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("after", [b"\x01" * 512, b"junk", bytes(1024) + b"x", b"y" * (3 * CHUNK)])
def test_bytes_after_the_end_of_archive_are_not_all_that_is_held_back(tmp_path, after):
    """An engine's tar reader stops at the end-of-archive blocks and the containerd store then
    loads the image, whatever follows: the tail held back must begin before them, in the last
    member, even when other bytes than zeros follow (a file appended to, two tars in one)."""
    from envctl.images import _held_from

    tar = _tar({"manifest.json": b"[]", "empty": b""})
    end = len(tar.rstrip(b"\0"))  # the end of the last member's header (it has no data): end-of-archive follows
    path = tmp_path / "t"
    path.write_bytes(tar + after)
    with open(path, "rb") as handle:
        assert _held_from(handle, len(tar + after)) < end


def test_a_file_that_is_not_a_tar_is_held_back_from_its_last_block_with_a_byte_other_than_zero(tmp_path):
    from envctl.images import _held_from

    path = tmp_path / "t"
    path.write_bytes(b"not a tar" * 200 + bytes(2048))  # its last byte other than zero is byte 1799
    with open(path, "rb") as handle:
        assert _held_from(handle, path.stat().st_size) == 1536
