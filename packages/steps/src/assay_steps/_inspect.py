"""Listing and inspecting entries folders: what they hold, and whether a process writes there.

These functions serve ``assay cache info``, ``compact``, ``migrate`` and ``prune``. Each works on
one *entries folder* (a code version folder ``<Step>-<uid>/code-<version>/``, or a step folder
without code versions); [`entries_folders`][assay_steps.entries_folders] lists those of a cache
folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._arrays import open_regular
from ._catalog import catalog_for, kind_of
from ._claims import CLAIMS, STALE_SECONDS, _read_claim, pid_alive
from ._claims import _live as _claim_live
from ._frames import (
    ARRAY,
    ARRAY_FILE,
    ERROR,
    RESULT,
    CorruptEntryError,
)
from ._legacy import LEGACY_FOLDER, legacy_uids
from ._scan import FoundFrame, SegmentScan
from ._segments import _HOST, SEGMENTS, SUFFIX, _writers

ARRAYS = "arrays"
#: Frames whose value is an entry (not a clearing or a seal).
ENTRY_KINDS = frozenset({RESULT, ERROR, ARRAY, ARRAY_FILE})

_STEP_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*-[0-9a-f]{32}")
_BLOCK = 4 * 2**20
_ARRAY_NAMES = frozenset({ARRAY_FILE})  # the values a survey reads: array files' names
_BEAT = ".beat"
_LOCK_FRESH_SECONDS = 120.0  # locks of the older layout were refreshed every 20 s


# ---------------------------------------------------------------- folders


def entries_folders(cache_folder: str | Path) -> list[Path]:
    """Return the entries folders of a cache folder: its steps' code version folders.

    A step folder (``<StepName>-<32 hex>/``) counts itself when it has no ``code-*/`` folder
    or when it holds entries of its own (``segments/``, ``arrays/`` or ``cache/``).

    Examples:
        >>> base = Path("cache-base")
        >>> (base / ("Mult-" + "0" * 32) / "code-v1").mkdir(parents=True)
        >>> print(*(p.relative_to(base).as_posix() for p in entries_folders(base)))
        Mult-00000000000000000000000000000000/code-v1

    """
    base = Path(cache_folder)
    if not base.is_dir():
        return []
    found: list[Path] = []
    for step in sorted(base.iterdir()):
        if not _STEP_FOLDER.fullmatch(step.name) or not _plain_dir(step):
            continue
        versions = [v for v in sorted(step.glob("code-*")) if _plain_dir(v)]
        own = any(_plain_dir(step / name) for name in (SEGMENTS, ARRAYS, LEGACY_FOLDER))
        if own or not versions:
            found.append(step)
        found += versions
    return found


def _plain_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


# ---------------------------------------------------------------- scanning segments


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


def _list_segments(segments_folder: str) -> list[tuple[str, int, float]]:
    """Return ``(name, size, mtime)`` of each segment, sorted by name (links etc. are left out)."""
    found = []
    try:
        listing = os.scandir(segments_folder)
    except FileNotFoundError:
        return []
    with listing:
        for entry in listing:
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIX):
                continue
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                found.append((entry.name, info.st_size, info.st_mtime))
    return sorted(found)


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


# ---------------------------------------------------------------- who is still writing


def _own_segments() -> set[str]:
    """Return the segments this process is appending to (in any folder, by any path to it)."""
    pid = os.getpid()
    return {writer.name for writer in list(_writers.values()) if writer.pid == pid}


def _owner(name: str) -> tuple[str, int] | None:
    """Return ``(host, pid)`` from a segment name ``<time>-<host>-<pid>-<token>.seg``."""
    stem = name.removesuffix(SUFFIX)
    _, _, rest = stem.partition("-")
    host, _, _ = rest.rpartition("-")  # the token
    host, _, pid = host.rpartition("-")
    return (host, int(pid)) if host and pid.isdigit() else None


def _writer_live(folder: str, name: str, mtime: float, now: float, writing: set[str]) -> bool:
    """Return whether the writer of segment ``name`` may still append to it."""
    owner = _owner(name)
    if owner is not None and owner[0] == _HOST:
        if owner[1] == os.getpid():
            return name in writing  # this process's other segments are closed
        return pid_alive(owner[1])
    if now - mtime <= STALE_SECONDS:
        return True
    return owner is not None and _beating(folder, *owner, now)


def _beating(folder: str, host: str, pid: int, now: float) -> bool:
    """Return whether process ``pid`` of ``host`` has a fresh heartbeat in ``folder``."""
    try:
        names = os.listdir(os.path.join(folder, CLAIMS))
    except OSError:
        return False
    for name in names:
        if _beat_owner(name) != (host, pid):
            continue
        try:
            if now - os.lstat(os.path.join(folder, CLAIMS, name)).st_mtime <= STALE_SECONDS:
                return True
        except FileNotFoundError:  # removed by its process as it ended
            continue
    return False


def _beat_owner(name: str) -> tuple[str, int] | None:
    """Return ``(host as in segment names, pid)`` of a heartbeat file ``<host>-<pid>-<token>``."""
    if not name.endswith(_BEAT):
        return None
    host, _, _ = name.removesuffix(_BEAT).rpartition("-")  # the token
    host, _, pid = host.rpartition("-")
    if not host or not pid.isdigit():
        return None
    return re.sub(r"[^A-Za-z0-9_.-]", "_", host)[:64] or "host", int(pid)


def _live_claims(folder: str) -> int:
    """Count the live claims of ``folder`` without removing the stale ones (read only)."""
    claims = os.path.join(folder, CLAIMS)
    try:
        names = [n for n in os.listdir(claims) if n.endswith(".claim") and n[0] != "."]
    except FileNotFoundError:
        return 0
    seen = (_read_claim(claims, name) for name in names)
    return sum(1 for s in seen if s is not None and _claim_live(claims, s.owner))


def in_use(entries_folder: str | Path) -> bool:
    """Return whether a process is computing or writing entries of ``entries_folder`` now.

    In use means: a live claim, a segment whose writer is alive, or a lock of the older
    layout refreshed in the last two minutes. Nothing is changed.

    Examples:
        >>> in_use("no-such-folder")
        False

    """
    folder = os.path.abspath(entries_folder)
    if _live_claims(folder) or _fresh_lock(folder):
        return True
    now, writing = time.time(), _own_segments()
    segments = _list_segments(os.path.join(folder, SEGMENTS))
    return any(_writer_live(folder, n, m, now, writing) for n, _, m in segments)


def _fresh_lock(folder: str) -> bool:
    """Return whether a lock of the older layout was refreshed lately (its run goes on)."""
    locks = os.path.join(folder, "locks")
    try:
        names = os.listdir(locks)
    except OSError:
        return False
    cutoff = time.time() - _LOCK_FRESH_SECONDS
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # released meanwhile
            if os.lstat(os.path.join(locks, name)).st_mtime >= cutoff:
                return True
    return False


# ---------------------------------------------------------------- info


@dataclass(frozen=True)
class FolderInfo:
    """What an entries folder holds (see [`folder_info`][assay_steps.folder_info]).

    Attributes:
        folder: the entries folder (absolute).
        entries: entries served from segments: results, cached errors and arrays.
        errors: those of them that are cached errors.
        segments: segment files; ``segment_bytes`` their size.
        live_segments: segments whose writer may still append (compaction leaves them).
        arrays: large array files under ``arrays/``; ``array_bytes`` their size.
        dead_frames: frames that serve nothing: superseded by a newer frame, or cleared.
        dead_bytes: the bytes of segments that serve nothing (dead frames, seals, torn tails).
        reclaimable_bytes: those of ``dead_bytes`` in finished segments (a compaction frees).
        legacy: entries of the older layout still in ``cache/`` (``assay cache migrate``).
        claims: live claims (chunks of items being computed now).

    """

    folder: str
    entries: int
    errors: int
    segments: int
    segment_bytes: int
    live_segments: int
    arrays: int
    array_bytes: int
    dead_frames: int
    dead_bytes: int
    reclaimable_bytes: int
    legacy: int
    claims: int


def folder_info(entries_folder: str | Path) -> FolderInfo:
    """Describe an entries folder: entries, segments, arrays, dead frames, older entries.

    Entries are counted from this process's catalog after a refresh; nothing is changed in
    the folder (but for the saved catalog a large scan writes, as any reader's does).

    Examples:
        >>> info = folder_info("empty-entries")
        >>> info.entries, info.segments, info.legacy
        (0, 0, 0)

    """
    folder = os.path.abspath(entries_folder)
    catalog = catalog_for(folder)
    catalog.refresh()
    kinds = [kind_of(location) for location in catalog.entries.values()]
    survey = _survey(folder)
    arrays = _array_files(folder)
    live_items = sum(1 for item in survey.items.values() if item.kind in ENTRY_KINDS)
    return FolderInfo(
        folder=folder,
        entries=sum(1 for kind in kinds if kind in ENTRY_KINDS),
        errors=kinds.count(ERROR),
        segments=len(survey.segments),
        segment_bytes=sum(s.size for s in survey.segments),
        live_segments=sum(1 for s in survey.segments if s.live),
        arrays=len(arrays),
        array_bytes=sum(size for size, _ in arrays.values()),
        dead_frames=sum(survey.frames) - live_items,
        dead_bytes=survey.dead_bytes(finished_only=False),
        reclaimable_bytes=survey.dead_bytes(finished_only=True),
        legacy=len(legacy_uids(os.path.join(folder, LEGACY_FOLDER))),
        claims=_live_claims(folder),
    )


def _array_files(folder: str) -> dict[str, tuple[int, float]]:
    """Return ``name -> (size, mtime)`` of the array files of ``folder`` (not temporary ones)."""
    found = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(os.path.join(folder, ARRAYS)) as it:
        for entry in it:
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                found[entry.name] = (info.st_size, info.st_mtime)
    return found


@dataclass(frozen=True)
class PackedEntry:
    """One entry served from the segments of a folder.

    See [`packed_entries`][assay_steps.packed_entries].

    Attributes:
        uid: the item uid.
        kind: the kind of its newest frame (``RESULT``, ``ERROR``, ``ARRAY``, ``ARRAY_FILE``).
        stamp: when it was written, in nanoseconds since the epoch.
        bytes: its frame's size, and its array file's for a large array.
        busy: its frame lies in a segment whose writer is alive (a compaction keeps it).

    """

    uid: str
    kind: int
    stamp: int
    bytes: int
    busy: bool


def packed_entries(entries_folder: str | Path) -> list[PackedEntry]:
    """Return the entries served from the segments of ``entries_folder``, oldest first.

    Examples:
        >>> packed_entries("empty-entries")
        []

    """
    folder = os.path.abspath(entries_folder)
    survey = _survey(folder)
    arrays = _array_files(folder)
    found = []
    for uid, item in survey.items.items():
        if item.kind not in ENTRY_KINDS:
            continue
        size = item.length
        name = survey.array_refs.get((item.segment, item.offset))
        if name is not None:
            size += arrays.get(name, (0, 0.0))[0]
        busy = survey.segments[item.segment].live
        found.append(PackedEntry(uid, item.kind, item.stamp, size, busy))
    return sorted(found, key=lambda entry: (entry.stamp, entry.uid))


def count_entries(entries_folder: str | Path) -> int:
    """Return how many items have an entry: packed ones, and older ones no frame shadows.

    Examples:
        >>> count_entries("empty-entries")
        0

    """
    folder = os.path.abspath(entries_folder)
    catalog = catalog_for(folder)
    catalog.refresh()
    packed = sum(1 for loc in catalog.entries.values() if kind_of(loc) in ENTRY_KINDS)
    legacy = legacy_uids(os.path.join(folder, LEGACY_FOLDER))
    return packed + sum(1 for uid in legacy if uid not in catalog.entries)
