"""Frames: one entry as it lies in a segment, verified by a checksum covering uid and value."""

from __future__ import annotations

import pytest
from assay_steps import _frames
from assay_steps._frames import CorruptEntryError, encode, parse_header, verify
from hypothesis import given
from hypothesis import strategies as st

UID = b"0123456789abcdef0123456789abcdef"


def frame(
    kind: int = _frames.RESULT, uid: bytes = UID, stamp: int = 7, value: bytes = b"v"
) -> bytes:
    return b"".join(encode(kind, uid, stamp, value))


def check(data: bytes, uid: bytes = UID) -> tuple[int, int, bytes]:
    kind, stamp, value = verify(data, 0, uid, "segment")
    return kind, stamp, bytes(value)


@given(
    kind=st.sampled_from(sorted(_frames.KINDS)),
    uid=st.binary(min_size=0, max_size=300),
    stamp=st.integers(min_value=0, max_value=2**64 - 1),
    value=st.binary(max_size=2000),
)
def test_a_frame_reads_back_what_was_encoded(
    kind: int, uid: bytes, stamp: int, value: bytes
) -> None:
    data = frame(kind, uid, stamp, value)
    assert parse_header(data, 0, len(data)) == (kind, len(uid), stamp, len(value))
    assert _frames.frame_length((kind, len(uid), stamp, len(value))) == len(data)
    assert check(data, uid) == (kind, stamp, value)


def test_a_frame_in_the_middle_of_other_bytes_is_read_at_its_offset() -> None:
    before, after = frame(value=b"first"), frame(value=b"third")
    data = before + frame(stamp=9, value=b"second") + after
    kind, stamp, value = verify(data, len(before), UID, "segment")
    assert (kind, stamp, bytes(value)) == (_frames.RESULT, 9, b"second")


@pytest.mark.parametrize("mask", [0x01, 0x10, 0x80, 0xFF])
def test_a_bit_flip_anywhere_in_a_frame_is_detected(mask: int) -> None:
    # Header (magic, kind, lengths, stamp), uid, value and checksum: every byte.
    data = frame(value=b"a value of some length")
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= mask
        with pytest.raises(CorruptEntryError):
            check(bytes(damaged))


@pytest.mark.parametrize("damaged_value", [b"", b"v" * 100, b"\x00" * 22])
def test_a_frame_with_a_changed_value_of_another_length_is_detected(damaged_value: bytes) -> None:
    data = frame(value=b"a value of some length")
    start = _frames.HEADER.size + len(UID)  # the value follows the header and the uid
    forged = data[:start] + damaged_value + data[start + 22 :]
    with pytest.raises(CorruptEntryError):
        check(forged)


def test_a_frame_is_not_verified_as_another_items() -> None:
    data = frame(uid=b"item-a")
    assert check(data, b"item-a")[2] == b"v"
    with pytest.raises(CorruptEntryError, match="another item"):
        check(data, b"item-b")
    with pytest.raises(CorruptEntryError):
        check(data, b"item-")  # a prefix of the uid is another uid


def test_the_checksum_covers_the_uid() -> None:
    # A frame whose uid bytes are replaced by another item's (same length) fails its
    # checksum: a value can never be moved to another item by rewriting its uid.
    data = bytearray(frame(uid=b"item-a"))
    start = _frames.HEADER.size
    data[start : start + 6] = b"item-b"
    with pytest.raises(CorruptEntryError, match="checksum"):
        check(bytes(data), b"item-b")


def test_every_truncation_of_a_frame_is_detected() -> None:
    data = frame(value=b"some value")
    for size in range(len(data)):
        assert parse_header(data[:size], 0, size) is None
        with pytest.raises(CorruptEntryError):
            check(data[:size])


def test_lengths_are_checked_against_the_end_of_the_file_not_only_the_buffer() -> None:
    data = frame(value=b"x" * 100)
    head = data[: _frames.HEADER.size]
    # Only the header was read; the file is long enough: the header is plausible.
    assert parse_header(head, 0, len(head), total=len(data)) is not None
    # The file ends before the frame does: no frame there.
    assert parse_header(head, 0, len(head), total=len(data) - 1) is None


def test_bytes_that_are_not_a_frame_have_no_header() -> None:
    assert parse_header(b"", 0, 0) is None
    assert parse_header(b"\x00" * 100, 0, 100) is None
    bad_kind = bytearray(frame())
    bad_kind[4] = 99
    assert parse_header(bytes(bad_kind), 0, len(bad_kind)) is None


def test_a_uid_longer_than_a_frame_can_hold_is_refused(tmp_path: object) -> None:
    from assay_steps._segments import SegmentWriter

    writer = SegmentWriter(str(tmp_path))
    with pytest.raises(ValueError, match="item uid of"):
        writer.append(_frames.RESULT, "x" * (_frames.MAX_UID + 1), b"v", stamp=1, fsync=False)
