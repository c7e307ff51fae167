"""Compaction of entries folders: the finished segments merged into one, the dead frames gone.

**Compaction** ([`compact`][assay_steps.compact]) merges the segments whose writers are finished
into one new segment holding the newest frame of each item, with its original stamp. A segment is
finished when its writer cannot append to it any more: on this host, its process is gone; from
another host, the file has not changed for ``STALE_SECONDS`` and its process has no fresh heartbeat.
The segment of a live writer is never touched. The new segment is written under a hidden temporary
name, flushed to stable storage and renamed into place before any merged segment is deleted, so a
crash at any point loses nothing: what it can leave is a frame both in the new segment and in an old
one, which is harmless (the same frame, the same stamp: the catalog keeps one). For the same reason
an item whose newest frame goes (cleared, or dropped on request) keeps a clearing frame while any
older frame of it may remain elsewhere: deleting the merged segments one by one never lets an older
value come back.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ._arrays import open_regular
from ._catalog import forget_catalog
from ._claims import CLAIMS, STALE_SECONDS, live_claims, pid_alive
from ._durable import sync_dir
from ._frames import DELETED, SEAL, CorruptEntryError, encode, verify
from ._inspect import _BLOCK, ARRAYS, _array_files
from ._legacy import LEGACY_FOLDER, legacy_uids
from ._liveness import _beat_owner
from ._segments import _HOST, SEGMENTS, create_exclusive, new_name
from ._snapshot import INDEX_NAME
from ._survey import _Item, _Survey, _survey

#: An array file no frame references is removed by a compaction only once it is this old:
#: a writer writes an array's file first and its frame just after, and is not to be robbed.
ARRAY_GRACE_SECONDS = 60.0
_TMP = ".tmp"

#: ``drop(uid, kind, stamp)``: whether [`compact`][assay_steps.compact] drops an entry
#: (its newest frame).
DropRule = Callable[[str, int, int], bool]


@dataclass
class CompactReport:
    """What [`compact`][assay_steps.compact] did to one entries folder.

    Attributes:
        folder: the entries folder (absolute).
        merged: the segments merged (and deleted); ``merged_bytes`` their size.
        segment: the new segment ("" when none was needed); ``segment_bytes`` its size.
        entries: entries copied into it; ``cleared``: clearing frames kept in it.
        dropped: uids whose entry went because ``drop`` said so.
        corrupt: uids whose newest frame failed verification (their entry is gone).
        live: segments left alone because their writer may still append.
        arrays_removed: array files no frame references; ``array_bytes`` their size.

    """

    folder: str
    merged: list[str] = field(default_factory=list)
    merged_bytes: int = 0
    segment: str = ""
    segment_bytes: int = 0
    entries: int = 0
    cleared: int = 0
    dropped: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    live: int = 0
    arrays_removed: int = 0
    array_bytes: int = 0

    @property
    def freed(self) -> int:
        """The bytes the compaction freed."""
        return self.merged_bytes - self.segment_bytes + self.array_bytes


@dataclass
class _Plan:
    copies: list[tuple[str, _Item]] = field(default_factory=list)
    cleared: list[tuple[str, int]] = field(default_factory=list)  # (uid, stamp) to shadow
    dropped: list[str] = field(default_factory=list)
    legacy: set[str] = field(default_factory=set)  # uids with an entry of the older layout

    def shadows(self, uid: str, item: _Item) -> bool:
        """Return whether an item whose newest frame goes needs a clearing frame."""
        return item.frames > 1 or uid in self.legacy


def compact(
    entries_folder: str | Path,
    *,
    drop: DropRule | None = None,
    grace: float = ARRAY_GRACE_SECONDS,
) -> CompactReport:
    """Merge the finished segments of ``entries_folder`` into one; remove what serves nothing.

    Each item keeps its newest frame, with its original stamp; superseded and cleared frames
    go, and so does every entry for which ``drop(uid, kind, stamp)`` is true. Array files that
    no frame references any more and that are older than ``grace`` seconds are deleted, and so
    is the saved catalog (``index``, rebuilt by the next reader). Segments of live writers are
    left as they are. Safe to run while steps run on the folder.

    Examples:
        >>> from assay_steps import StepPaths
        >>> from assay_steps._store import EntryStore
        >>> store = EntryStore(StepPaths(Path("compacted"), "Double-0"))
        >>> store.write_result("item", 42); store.sync()
        >>> compact(store.folder).live  # this process is still writing that segment
        1

    Raises:
        OSError: The folder cannot be written. Nothing that holds an entry is deleted before
            the new segment is in place, so a compaction stopped by it loses nothing.

    """
    folder = os.path.abspath(entries_folder)
    try:
        report = _compact_once(folder, drop, grace)
    except FileNotFoundError:
        # A segment went while it was read: another compaction merged it. Nothing of this
        # one was deleted; a second pass sees what that one left.
        report = _compact_once(folder, drop, grace)
    live_claims(folder)  # removes the claims of processes that are gone, as any claimer does
    _remove_dead_beats(folder)
    forget_catalog(folder)
    return report


def _compact_once(folder: str, drop: DropRule | None, grace: float) -> CompactReport:
    survey = _survey(folder)
    report = CompactReport(folder, live=sum(1 for s in survey.segments if s.live))
    merged = {n for n, s in enumerate(survey.segments) if not s.live}
    plan = _plan(survey, merged, drop)
    kept_refs: set[str] = set()
    if merged and _worth_merging(survey, merged, plan):
        kept_refs = _write_and_install(survey, plan, report)
        report.merged = [survey.segments[n].name for n in sorted(merged)]
        report.merged_bytes = sum(survey.segments[n].size for n in merged)
        report.dropped = plan.dropped
        _remove_segments(folder, report.merged)
        _remove_snapshot(folder)
    else:
        merged = set()
    _remove_orphan_arrays(folder, survey, merged, kept_refs, grace, report)
    return report


def _worth_merging(survey: _Survey, merged: set[int], plan: _Plan) -> bool:
    """Return whether merging changes anything: several segments, or a frame that goes."""
    if len(merged) > 1:
        return True
    (number,) = merged
    frames = survey.frames[number]
    return not frames or bool(plan.dropped) or len(plan.copies) + len(plan.cleared) != frames


def _plan(survey: _Survey, merged: set[int], drop: DropRule | None) -> _Plan:
    plan = _Plan(legacy=set(legacy_uids(os.path.join(survey.folder, LEGACY_FOLDER))))
    for uid, item in survey.items.items():
        if item.segment not in merged:
            continue  # its newest frame stays where it is: the merged frames of it are dead
        goes = item.kind == DELETED or (drop is not None and drop(uid, item.kind, item.stamp))
        if not goes:
            plan.copies.append((uid, item))
            continue
        if item.kind != DELETED:
            plan.dropped.append(uid)
        if plan.shadows(uid, item):
            plan.cleared.append((uid, item.stamp))  # an older frame or file must stay shadowed
    plan.copies.sort(key=lambda pair: (pair[1].segment, pair[1].offset))
    return plan


def _merged_name(survey: _Survey) -> str:
    """Return a new segment name that sorts after every segment of the folder.

    Frames of one stamp are ordered by their segment's name: a copy must win over the frame
    it copies, even when that segment's writer had a clock running ahead of this one's.
    """
    name = new_name()
    latest = max((s.name[:16] for s in survey.segments), default="")
    if latest >= name[:16]:
        name = f"{int(latest, 16) + 1:016x}{name[16:]}"
    return name


def _write_and_install(survey: _Survey, plan: _Plan, report: CompactReport) -> set[str]:
    """Write the merged segment, flush it and rename it into place; return its array files."""
    if not plan.copies and not plan.cleared:
        return set()
    segments = os.path.join(survey.folder, SEGMENTS)
    name = _merged_name(survey)
    tmp = os.path.join(segments, f".{name}{_TMP}")
    fd = create_exclusive(tmp)
    try:
        refs = _write_frames(fd, survey, plan, report)
        os.fsync(fd)
        report.segment_bytes = os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, os.path.join(segments, name))
    sync_dir(segments)  # the new segment is durable before any old one goes
    report.segment = name
    return refs


def _write_frames(fd: int, survey: _Survey, plan: _Plan, report: CompactReport) -> set[str]:
    out = _Output(fd)
    refs: set[str] = set()
    cleared = list(plan.cleared)
    for uid, frame, item in _verified_copies(survey, plan.copies, report):
        if frame is None:
            if plan.shadows(uid, item):
                cleared.append((uid, item.stamp))
            continue
        out.add(frame)
        report.entries += 1
        ref = survey.array_refs.get((item.segment, item.offset))
        if ref is not None:
            refs.add(ref)
    for uid, stamp in cleared:
        out.add(b"".join(encode(DELETED, uid.encode(), stamp, b"")))
        report.cleared += 1
    out.add(b"".join(encode(SEAL, b"", time.time_ns(), out.count.to_bytes(8, "little"))))
    out.flush()
    return refs


def _verified_copies(
    survey: _Survey, copies: list[tuple[str, _Item]], report: CompactReport
) -> Iterator[tuple[str, bytes | None, _Item]]:
    """Yield each frame to copy, verified (None for one that fails: its entry is gone)."""
    segments = os.path.join(survey.folder, SEGMENTS)
    fds: dict[int, int] = {}
    try:
        for uid, item in copies:
            if item.segment not in fds:
                fds[item.segment] = open_regular(
                    os.path.join(segments, survey.segments[item.segment].name)
                )
            frame = os.pread(fds[item.segment], item.length, item.offset)
            try:
                verify(frame, 0, uid.encode(), "segment")
            except CorruptEntryError:
                report.corrupt.append(uid)
                yield uid, None, item
                continue
            yield uid, frame, item
    finally:
        for fd in fds.values():
            os.close(fd)


class _Output:
    """Frames written back to back to a new file, in large writes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, frame: bytes) -> None:
        self._chunks.append(frame)
        self._size += len(frame)
        self.count += 1
        if self._size >= _BLOCK:
            self.flush()

    def flush(self) -> None:
        view = memoryview(b"".join(self._chunks))
        while view:
            view = view[os.write(self.fd, view) :]
        self._chunks, self._size = [], 0


def _remove_segments(folder: str, names: list[str]) -> None:
    """Delete merged segments (each of their frames is in the new segment, or dead)."""
    segments = os.path.join(folder, SEGMENTS)
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # another compaction took it meanwhile
            os.unlink(os.path.join(segments, name))
    with contextlib.suppress(FileNotFoundError):
        sync_dir(segments)


def _remove_snapshot(folder: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, INDEX_NAME))


def _remove_orphan_arrays(
    folder: str,
    survey: _Survey,
    merged: set[int],
    kept: set[str],
    grace: float,
    report: CompactReport,
) -> None:
    """Delete array files no remaining frame references, and leftovers of killed writers."""
    referenced = set(kept)
    referenced.update(name for (n, _), name in survey.array_refs.items() if n not in merged)
    cutoff = time.time() - grace
    arrays = os.path.join(folder, ARRAYS)
    for name, (size, mtime) in _array_files(folder).items():
        if name in referenced or mtime > cutoff:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(arrays, name))
            report.arrays_removed += 1
            report.array_bytes += size
    cutoff = time.time() - max(grace, STALE_SECONDS)
    for where in (ARRAYS, SEGMENTS, CLAIMS):
        _remove_leftovers(os.path.join(folder, where), cutoff)
    _remove_leftovers(folder, cutoff, f"{INDEX_NAME}.")  # a snapshot being saved


def _remove_leftovers(folder: str, cutoff: float, prefix: str = ".") -> None:
    """Delete temporary files a killed writer or compaction left (``.tmp``, old)."""
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as listing:
        for entry in listing:
            if not (entry.name.startswith(prefix) and entry.name.endswith(_TMP)):
                continue
            with contextlib.suppress(OSError):  # best effort: a read-only archive keeps them
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)


def _remove_dead_beats(folder: str) -> None:
    """Delete heartbeat files of processes that are gone (a killed process leaves its own)."""
    claims = os.path.join(folder, CLAIMS)
    now = time.time()
    with contextlib.suppress(FileNotFoundError), os.scandir(claims) as listing:
        for entry in listing:
            owner = _beat_owner(entry.name)
            if owner is None:
                continue
            host, pid = owner
            if host == _HOST:
                dead = not pid_alive(pid)
            else:
                dead = now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
            if dead:
                with contextlib.suppress(OSError):  # best effort, as for leftovers
                    os.unlink(entry.path)
