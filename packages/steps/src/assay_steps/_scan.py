"""Walking the frames of a segment file: headers read in blocks, values skipped, damage passed.

One walk serves every reader of segments: the catalog (which scans what segments gained) and
the upkeep commands (which survey whole segments). It yields each frame's place and header;
a frame's value is read only when asked for (an array file's name). It stops at the end of
what was written: a torn last frame, or a frame still being written, which a later walk from
``SegmentScan.end`` finds once whole.

Damage in the middle of a segment (bytes that are no frame) is passed by searching for the
next whole frame that verifies. A frame being written is the last thing in its file, so a
verified frame after the damage proves that it is damage. How far the search went is kept in
``SegmentScan.searched``, so that a later walk does not search the same bytes again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

from ._frames import (
    HEADER,
    MAGIC,
    SEAL,
    CorruptEntryError,
    frame_length,
    may_grow_into_frame,
    parse_header,
    verify,
)

#: Bytes read ahead for the headers of the frames that follow.
SCAN_BLOCK = 4 * 2**20


class FoundFrame(NamedTuple):
    """A frame met by a walk: where it starts, its header, and its value when asked for."""

    offset: int
    kind: int
    uid: str
    stamp: int
    length: int
    value: bytes | None


class SegmentScan:
    """Walk the frames (not the seals) of the open segment ``fd``, from ``start`` to ``size``.

    Args:
        fd: The segment, open for reading.
        start: Where the walk starts (the end of a previous walk, or 0).
        size: Where the file ends.
        searched: Where a previous walk's search past damage stopped (0: nowhere).
        budget: The most bytes searched past damage in this walk (None: no limit).
        values_of: Kinds of frame whose value is read and yielded (values up to 4 KiB).

    Examples:
        >>> import tempfile
        >>> from ._frames import RESULT, encode
        >>> path = tempfile.mktemp()
        >>> with open(path, "wb") as f:
        ...     _ = f.write(b"".join(encode(RESULT, b"item", 1, b"value")))
        >>> fd = os.open(path, os.O_RDONLY)
        >>> [frame.uid for frame in SegmentScan(fd, 0, os.fstat(fd).st_size)]
        ['item']
        >>> os.close(fd)

    """

    def __init__(
        self,
        fd: int,
        start: int,
        size: int,
        *,
        searched: int = 0,
        budget: int | None = None,
        values_of: frozenset[int] = frozenset(),
    ) -> None:
        self.fd, self.size, self.values_of = fd, size, values_of
        self.budget = budget
        #: Where the walk stopped: the next walk starts there.
        self.end = start
        #: Where the search past damage stopped (0 once it found a frame).
        self.searched = searched

    def __iter__(self) -> Iterator[FoundFrame]:
        fd, size = self.fd, self.size
        offset = self.end
        block, block_start = b"", offset
        while offset < size:
            local = offset - block_start
            header = parse_header(block, local, len(block), total=size - block_start)
            if header is not None and local + HEADER.size + header[1] > len(block):
                header = None  # its uid runs past the block read ahead
            if not block or (header is None and local > 0 and block_start + len(block) < size):
                block_start, local = offset, 0
                block = os.pread(fd, min(SCAN_BLOCK, size - offset), offset)
                header = parse_header(block, 0, len(block), total=size - offset)
            if header is None:
                resumed = self._resync(offset)
                if resumed is None:
                    break  # the end of what is written (perhaps a frame being written now)
                offset, block, block_start = resumed, b"", resumed
                continue
            kind, uid_len, stamp, value_len = header
            length = frame_length(header)
            if kind != SEAL:
                first = local + HEADER.size
                uid = block[first : first + uid_len].decode(errors="replace")
                value = None
                if kind in self.values_of and value_len <= 4096:
                    value = os.pread(fd, value_len, offset + HEADER.size + uid_len)
                yield FoundFrame(offset, kind, uid, stamp, length, value)
            offset += length
            self.end = offset
        self.end = offset

    def _resync(self, offset: int) -> int | None:
        """Return the offset of the next whole, verified frame after ``offset``; else None."""
        fd, size = self.fd, self.size
        search = max(offset + 1, self.searched)
        limit = size if self.budget is None else min(size, search + self.budget)
        growing = None  # the first place where a frame may still be being written
        while search < limit:
            block = os.pread(fd, min(SCAN_BLOCK, size - search), search)
            found = block.find(MAGIC)
            if found < 0:
                search += max(len(block) - len(MAGIC) + 1, 1)
                continue
            candidate = search + found
            head = os.pread(fd, HEADER.size, candidate)
            header = parse_header(head, 0, len(head), total=size - candidate)
            if header is not None and _verifies(fd, candidate, header):
                self.searched = 0
                return candidate
            if header is None and growing is None and may_grow_into_frame(head, size - candidate):
                growing = candidate
            search = candidate + 1
        if search < size:  # out of budget: go on from here next time
            self.searched = search
        else:  # looked at all: next time, from where a frame may still complete
            self.searched = growing if growing is not None else max(offset + 1, search - 3)
        return None


def _verifies(fd: int, offset: int, header: tuple[int, int, int, int]) -> bool:
    frame = os.pread(fd, frame_length(header), offset)
    try:
        verify(frame, 0, frame[HEADER.size : HEADER.size + header[1]], "segment")
    except CorruptEntryError:
        return False
    return True
