"""The frame: one cache entry as it lies in a segment file.

A frame is a 24-byte header, the item uid, the value, then a 16-byte checksum::

    magic "ASF1" | kind u8 | 0 u8 | uid length u16 | stamp u64 | value length u64
    | uid | value | xxh3-128 of everything before it in the frame

all little-endian. The checksum covers the header, the uid and the value, in one pass over
contiguous bytes: it covers which item the value belongs to, so a frame copied over another
item's frame fails verification instead of serving one item's value as another's. ``stamp``
orders the frames of one item across writers (the newest wins); see ``_catalog.py``.
"""

from __future__ import annotations

import struct
from typing import Final

import xxhash

MAGIC: Final = b"ASF1"
HEADER = struct.Struct("<4sBBHQQ")
CHECKSUM: Final = 16
#: Bytes a frame adds to its uid and value.
OVERHEAD: Final = HEADER.size + CHECKSUM

# Kinds of frame.
RESULT: Final = 1  # a pickled result
ERROR: Final = 2  # a pickled CachedError
ARRAY: Final = 3  # a small numpy array, inline: .npy header + data
ARRAY_FILE: Final = 4  # a large numpy array: the name of its .npy file under arrays/
DELETED: Final = 5  # the item's entry was cleared
SEAL: Final = 6  # the writer flushed what it wrote before this frame (value: frame count)

KINDS: Final = frozenset({RESULT, ERROR, ARRAY, ARRAY_FILE, DELETED, SEAL})
#: The longest item uid a frame can hold (names are capped at 200 characters anyway).
MAX_UID: Final = 2**16 - 1


class CorruptEntryError(RuntimeError):
    """A cache entry exists but fails its size, magic or checksum verification."""


class SegmentGoneError(CorruptEntryError):
    """The segment an entry was found in is gone (compacted since): look it up again."""


def encode(kind: int, uid: bytes, stamp: int, value: bytes | memoryview) -> list[bytes]:
    """Return the chunks of a frame: header, uid, value and checksum (written back to back)."""
    head = HEADER.pack(MAGIC, kind, 0, len(uid), stamp, len(value))
    hasher = xxhash.xxh3_128(head)
    hasher.update(uid)
    hasher.update(value)
    return [head, uid, value, hasher.digest()]  # type: ignore[list-item]


def frame_length(header: tuple[int, int, int, int]) -> int:
    """Return the length of the whole frame whose parsed header is ``header``."""
    return OVERHEAD + header[1] + header[3]


def parse_header(
    data: bytes | memoryview, offset: int, size: int, *, total: int | None = None
) -> tuple[int, int, int, int] | None:
    """Return ``(kind, uid length, stamp, value length)`` of the frame at ``offset``.

    None when no whole, plausible frame starts there (the end of what was written, a frame
    torn by a crash, or bytes that are not a frame). ``size`` is how much of ``data`` is
    there; ``total`` (default ``size``) is where the file ends, counted from the start of
    ``data``: the frame's lengths are checked against it, so that nothing past the frame is
    ever read.
    """
    if offset + HEADER.size > size:
        return None
    magic, kind, pad, uid_len, stamp, value_len = HEADER.unpack_from(data, offset)
    limit = size if total is None else total
    if magic != MAGIC or kind not in KINDS or pad:
        return None
    if offset + OVERHEAD + uid_len + value_len > limit:
        return None
    return kind, uid_len, stamp, value_len


def may_grow_into_frame(head: bytes, available: int) -> bool:
    """Return whether ``head`` may start a frame still being written.

    ``head`` is the first bytes at some offset and ``available`` how many bytes the file has
    from there: True when they start like a frame header (or a part of one) whose frame runs
    past the end of the file, so that more bytes may complete it; False for bytes that are no
    frame, or a whole frame.
    """
    if len(head) < HEADER.size:
        return len(head) == available and MAGIC.startswith(head[: len(MAGIC)])
    magic, kind, pad, uid_len, _, value_len = HEADER.unpack_from(head, 0)
    plausible = magic == MAGIC and kind in KINDS and not pad
    return plausible and OVERHEAD + uid_len + value_len > available


def verify(
    data: bytes | memoryview,
    offset: int,
    uid: bytes,
    where: str,
    header: tuple[int, int, int, int] | None = None,
) -> tuple[int, int, memoryview]:
    """Check the frame of ``uid`` at ``offset`` and return ``(kind, stamp, value)``.

    ``header`` is the frame's parsed header when the caller has it already.

    Raises:
        CorruptEntryError: No frame there, a frame of another item, or a checksum mismatch.

    """
    view = memoryview(data)
    if header is None:
        header = parse_header(view, offset, len(view))
    if header is None:
        raise CorruptEntryError(f"{where}: no whole frame at offset {offset}")
    kind, uid_len, stamp, value_len = header
    start = offset + HEADER.size
    body_end = start + uid_len + value_len
    if view[start : start + uid_len] != uid:
        raise CorruptEntryError(f"{where}: the frame at offset {offset} is another item's")
    if xxhash.xxh3_128_digest(view[offset:body_end]) != view[body_end : body_end + CHECKSUM]:
        raise CorruptEntryError(f"{where}: checksum mismatch at offset {offset}")
    return kind, stamp, view[start + uid_len : body_end]
