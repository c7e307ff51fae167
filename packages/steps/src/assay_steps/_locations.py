"""Where a frame lies: its segment, its kind and its offset, packed in one int.

The catalog (see ``_catalog.py``) maps each item uid to the location of its newest frame; a
million entries stay small in memory.
"""

from __future__ import annotations

from typing import Final

# An entry's location, packed in one int (a million entries stay small in memory):
# segment number << 44 | kind << 40 | offset in the segment.
_OFFSET_BITS: Final = 40
_KIND_SHIFT: Final = 40
_SEGMENT_SHIFT: Final = 44
_OFFSET_MASK: Final = (1 << _OFFSET_BITS) - 1


def pack(segment: int, kind: int, offset: int) -> int:
    """Return the packed location of a frame."""
    return (segment << _SEGMENT_SHIFT) | (kind << _KIND_SHIFT) | offset


def kind_of(location: int) -> int:
    """Return the frame kind of a packed location."""
    return (location >> _KIND_SHIFT) & 0xF
