"""The survey of an entries folder: every frame of its segments, as the commands need them.

Only the frames' headers are read (and the names of array files): which items have entries,
where their newest frames lie, how many frames each has, and which segments a live writer may
still append to.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ._arrays import open_regular
from ._frames import (
    ARRAY,
    ARRAY_FILE,
    ERROR,
    RESULT,
    CorruptEntryError,
)
from ._liveness import _list_segments, _own_segments, _writer_live
from ._scan import FoundFrame, SegmentScan
from ._segments import SEGMENTS

#: Frames whose value is an entry (not a clearing or a seal).
ENTRY_KINDS = frozenset({RESULT, ERROR, ARRAY, ARRAY_FILE})
_ARRAY_NAMES = frozenset({ARRAY_FILE})  # the values a survey reads: array files' names


@dataclass
class _Segment:
    name: str
    size: int
    live: bool  # its writer may still append: never merged


@dataclass(slots=True)
class _Item:
    """The newest frame of one item, and how many frames the item has in the folder."""

    stamp: int
    segment: int  # position in the survey's segments (sorted by name, as the catalog orders)
    offset: int
    kind: int
    length: int  # bytes of the whole frame
    frames: int = 1

    def older_than(self, stamp: int, segment: int, offset: int) -> bool:
        """Return whether a frame at ``(segment, offset)`` with ``stamp`` supersedes this one."""
        return (stamp, segment, offset) > (self.stamp, self.segment, self.offset)


@dataclass
class _Survey:
    """Every frame of an entries folder, as far as compaction and the commands need them."""

    folder: str
    segments: list[_Segment] = field(default_factory=list)
    items: dict[str, _Item] = field(default_factory=dict)
    #: (segment, offset) of each array file frame -> the name of its file under arrays/.
    array_refs: dict[tuple[int, int], str] = field(default_factory=dict)
    frames: list[int] = field(default_factory=list)  # frames per segment (seals not counted)

    def dead_bytes(self, *, finished_only: bool) -> int:
        """Bytes of frames that are no entry: superseded, cleared, seals, torn tails."""
        total = sum(s.size for s in self.segments if not (finished_only and s.live))
        for item in self.items.values():
            if item.kind in ENTRY_KINDS and not (
                finished_only and self.segments[item.segment].live
            ):
                total -= item.length
        return total


def _survey(folder: str) -> _Survey:
    """Scan the headers of every segment of ``folder`` (values are skipped, not read).

    Raises:
        FileNotFoundError: A segment listed was removed meanwhile (another compaction).

    """
    survey = _Survey(folder)
    segments_folder = os.path.join(folder, SEGMENTS)
    now = time.time()
    writing = _own_segments()
    for name, size, mtime in _list_segments(segments_folder):
        live = _writer_live(folder, name, mtime, now, writing)
        survey.segments.append(_Segment(name, size, live))
    for number, segment in enumerate(survey.segments):
        survey.frames.append(_scan(survey, number, os.path.join(segments_folder, segment.name)))
    return survey


def _scan(survey: _Survey, number: int, path: str) -> int:
    """Take in the frames of one segment; return how many there are (seals not counted)."""
    try:
        fd = open_regular(path)
    except CorruptEntryError:
        return 0  # replaced by something that is not a regular file: not ours to read
    try:
        count = 0
        for found in SegmentScan(fd, 0, os.fstat(fd).st_size, values_of=_ARRAY_NAMES):
            count += 1
            _note(survey, number, found)
        survey.segments[number].size = os.fstat(fd).st_size
        return count
    finally:
        os.close(fd)


def _note(survey: _Survey, number: int, found: FoundFrame) -> None:
    if found.value is not None:  # an array file's name
        survey.array_refs[number, found.offset] = found.value.decode(errors="replace")
    item = survey.items.get(found.uid)
    if item is None:
        survey.items[found.uid] = _Item(found.stamp, number, found.offset, found.kind, found.length)
        return
    item.frames += 1
    if item.older_than(found.stamp, number, found.offset):
        item.stamp, item.segment, item.offset = found.stamp, number, found.offset
        item.kind, item.length = found.kind, found.length
