"""The catalog: where the newest frame of each item lies, across an entries folder's segments.

It is built by scanning the segments' frame headers (values are skipped, not read) and kept
per process; a refresh scans only what the segments gained since. When an item has frames in
several segments, the one with the highest stamp wins (a later write, a force, a clear).
Nothing read through the catalog is trusted to it: every read verifies the frame's uid and
checksum, so the catalog is an accelerator, never a source of truth.

To spare a new process the scan of a large folder, a refresh that scanned many frames saves
the catalog as ``index`` (see ``_snapshot.py``); it is used only when every segment it
covers is still there, at least as long as it was.
"""

from __future__ import annotations

import os
import stat
import threading
import time

from xxhash import xxh3_128_digest

from ._arrays import open_regular
from ._frames import (
    CHECKSUM,
    DELETED,
    HEADER,
    MAGIC,
    CorruptEntryError,
    SegmentGoneError,
    frame_length,
    parse_header,
    verify,
)
from ._locations import _OFFSET_MASK, _SEGMENT_SHIFT, kind_of, pack
from ._racy import racy_seconds
from ._scan import SegmentScan
from ._segments import SEGMENTS, SUFFIX
from ._snapshot import INDEX_NAME, load_snapshot, save_snapshot

#: A refresh that scanned at least this many frames saves the catalog for the next process.
SNAPSHOT_FRAMES = 4096
#: Bytes searched for the next frame past damage, per segment and refresh.
_RESYNC_BUDGET = 64 * 2**20

_READ_BLOCK = 256 * 2**10
_MAX_OPEN = 64  # descriptors of segments kept open per catalog


class Catalog:
    """Maps each item uid to its newest frame in the segments of one entries folder.

    Examples:
        >>> import tempfile
        >>> catalog = Catalog(tempfile.mkdtemp())
        >>> catalog.refresh(); catalog.location("missing") is None
        True

    """

    def __init__(self, entries_folder: str) -> None:
        self.entries_folder = entries_folder
        self.folder = os.path.join(entries_folder, SEGMENTS)
        self.entries: dict[str, int] = {}
        self.names: list[str] = []  # segment number -> file name
        self._numbers: dict[str, int] = {}
        self._scanned: dict[str, int] = {}  # file name -> bytes scanned
        # The last block read of each segment: (its offset, its bytes, the file size then).
        # Dropped whenever a refresh sees the segment change other than by growing.
        self._blocks: dict[int, tuple[int, bytes, int]] = {}
        self._mtimes: dict[int, int] = {}
        self._fds: dict[str, int] = {}  # open segments, read with pread (never mapped:
        # a map of a file truncated under it would kill the process on access)
        self._listed_mtime = -1
        self._listed_at = 0.0
        self._searched: dict[str, int] = {}  # segment -> how far damage was searched past
        self._loaded = False
        self._since_snapshot = 0
        self.refused: list[str] = []  # names in segments/ that are not regular files
        #: Segments that could not be opened, and why (a permission, an I/O error...).
        self.unreadable: dict[str, str] = {}
        self._guard = threading.RLock()

    # ------------------------------------------------------------------ refreshing

    def refresh(self, *, relist: bool = False) -> None:
        """Take in every frame the segments gained since the last refresh.

        The segments folder is listed again when its modification time changed, or when
        ``relist`` asks (a network file system may show an old time for a while).
        """
        with self._guard:
            try:
                listed = os.stat(self.folder).st_mtime_ns
            except FileNotFoundError:
                if self.names:
                    self._reset()  # the folder was removed: nothing it held is left
                return
            if not self._loaded:
                self._loaded = True
                self._adopt_snapshot()
            racy = self._listed_at - listed / 1e9 < racy_seconds(listed)
            if listed != self._listed_mtime or relist or racy:
                self._listed_mtime, self._listed_at = listed, time.time()
                self._list()
            scanned = 0
            for name in list(self.names):
                if name:
                    scanned += self._scan_new(name)
            self._since_snapshot += scanned
            # Saved once the frames scanned since the last save are a good share of all:
            # saving costs a pass over every entry, so it must not happen per few frames.
            if self._since_snapshot >= max(SNAPSHOT_FRAMES, len(self.entries) // 4):
                self._save()

    def _reset(self) -> None:
        self.entries.clear()
        self.names.clear()
        self._numbers.clear()
        self._scanned.clear()
        self._searched.clear()
        self.unreadable.clear()
        self._blocks.clear()
        self._mtimes.clear()
        self._close_all()
        self._since_snapshot = 0

    def _list(self) -> None:
        present: set[str] = set()
        refused = []
        with os.scandir(self.folder) as found:
            for item in found:
                if not item.name.endswith(SUFFIX) or item.name.startswith("."):
                    continue
                if not item.is_file(follow_symlinks=False):
                    refused.append(item.name)  # a link, FIFO or device: never opened
                    continue
                present.add(item.name)
        self.refused = refused
        for name in refused:
            self.unreadable[name] = f"{os.path.join(self.folder, name)}: not a regular file"
        gone = [n for n in self.names if n and n not in present]
        if gone:  # compacted away: rebuild, so that no entry points into a missing file
            self._reset()
        for name in sorted(present - self._numbers.keys()):
            self._numbers[name] = len(self.names)
            self.names.append(name)
            self._scanned[name] = 0

    def _adopt_snapshot(self) -> None:
        loaded = load_snapshot(os.path.join(self.entries_folder, INDEX_NAME), self.folder)
        if loaded is None:
            return
        names, covered, entries = loaded
        self.names = list(names)
        self._numbers = {name: i for i, name in enumerate(names)}
        self._scanned = dict(zip(names, covered, strict=True))
        self.entries = entries

    def _save(self) -> None:
        self._since_snapshot = 0
        covered = [self._scanned.get(name, 0) for name in self.names]
        save_snapshot(
            os.path.join(self.entries_folder, INDEX_NAME), self.names, covered, self.entries
        )

    def _fd(self, name: str) -> int | None:
        """Return an open descriptor of segment ``name`` (None if gone or not a regular file)."""
        fd = self._fds.get(name)
        if fd is None:
            try:
                fd = open_regular(os.path.join(self.folder, name))
            except FileNotFoundError:
                return None
            except CorruptEntryError as error:  # unreadable: said when an item is missing
                self.unreadable[name] = str(error)
                return None
            if len(self._fds) >= _MAX_OPEN:
                self._close_all()
            self._fds[name] = fd
        return fd

    def _close_all(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _scan_new(self, name: str) -> int:
        """Scan what segment ``name`` gained; return the number of frames taken in."""
        path = os.path.join(self.folder, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return 0
        number = self._numbers[name]
        if self._mtimes.get(number) != info.st_mtime_ns:
            # Changed since read: a block kept from it may hold what is no longer there.
            self._mtimes[number] = info.st_mtime_ns
            self._blocks.pop(number, None)
        start = self._scanned.get(name, 0)
        if not stat.S_ISREG(info.st_mode) or info.st_size <= start:
            return 0
        fd = self._fd(name)
        if fd is None:
            return 0
        scan = SegmentScan(
            fd,
            start,
            os.fstat(fd).st_size,
            searched=self._searched.get(name, 0),
            budget=_RESYNC_BUDGET,  # damage (or a file of garbage) is searched in steps
        )
        entries, frames = self.entries, 0
        for found in scan:
            location = pack(number, found.kind, found.offset)
            old = entries.get(found.uid)
            if old is None or self._newer(found.stamp, location, old):
                entries[found.uid] = location
            frames += 1
        self._scanned[name] = scan.end
        if scan.searched:
            self._searched[name] = scan.searched
        else:
            self._searched.pop(name, None)
        return frames

    def _newer(self, stamp: int, location: int, old: int) -> bool:
        old_stamp = self._stamp(old)
        if stamp != old_stamp:
            return stamp > old_stamp
        # Same stamp: the later segment, or the later frame of one segment.
        segment, old_segment = location >> _SEGMENT_SHIFT, old >> _SEGMENT_SHIFT
        if segment != old_segment:
            return self.names[segment] > self.names[old_segment]
        return location & _OFFSET_MASK > old & _OFFSET_MASK

    def _stamp(self, location: int) -> int:
        fd = self._fd(self.names[location >> _SEGMENT_SHIFT])
        if fd is None:
            return -1
        head = os.pread(fd, HEADER.size, location & _OFFSET_MASK)
        if len(head) < HEADER.size:
            return -1
        return int(HEADER.unpack_from(head, 0)[4])

    # ------------------------------------------------------------------ reading

    def location(self, uid: str) -> int | None:
        """Return the packed location of the newest frame of ``uid``; None if none or cleared."""
        location = self.entries.get(uid)
        if location is None or kind_of(location) == DELETED:
            return None
        return location

    def cleared(self, uid: str) -> bool:
        """Return whether the newest frame of ``uid`` clears its entry."""
        location = self.entries.get(uid)
        return location is not None and kind_of(location) == DELETED

    def stamp(self, uid: str) -> int:
        """Return the stamp of the newest frame of ``uid`` (0 when it has none)."""
        location = self.entries.get(uid)
        return 0 if location is None else max(self._stamp(location), 0)

    def read(self, uid: str, location: int) -> tuple[int, memoryview]:
        """Return the kind and value of the frame at ``location``, verified to be ``uid``'s.

        Frames are read in blocks (neighbouring items are usually read together): the
        header, then exactly the length it gives, never past the end of the file.

        Raises:
            CorruptEntryError: The frame is damaged, another item's, or its file is gone.

        """
        kept = self.read_kept(uid, location)
        if kept is not None:
            return kind_of(location), memoryview(kept)
        # Not in a block read before, or failing there: read it (again) and say what is wrong.
        return self._read_block(uid, location >> _SEGMENT_SHIFT, location & _OFFSET_MASK)

    def read_kept(self, uid: str, location: int) -> bytes | None:
        """Return the value of a frame lying in a block already read, verified; else None.

        The fast path of warm hits: no system call, no error raised — None sends
        ``read`` to the file, which reads the block, or says what is wrong with the frame.
        """
        block = self._blocks.get(location >> _SEGMENT_SHIFT)
        if block is None:
            return None
        local = (location & _OFFSET_MASK) - block[0]
        data = block[1]
        if local < 0 or local + HEADER.size > len(data):
            return None
        magic, _, _, uid_len, _, value_len = HEADER.unpack_from(data, local)
        start = local + HEADER.size
        end = start + uid_len + value_len
        if (
            magic != MAGIC
            or end + CHECKSUM > len(data)
            or data[start : start + uid_len] != uid.encode()
        ):
            return None
        if xxh3_128_digest(data[local:end]) != data[end : end + CHECKSUM]:
            return None
        return data[start + uid_len : end]

    def _read_block(self, uid: str, number: int, offset: int) -> tuple[int, memoryview]:
        name = self.names[number]
        path = os.path.join(self.folder, name)
        fd = self._fd(name)
        if fd is None:
            raise SegmentGoneError(f"{path}: segment missing or not a regular file")
        size = os.fstat(fd).st_size
        head = os.pread(fd, HEADER.size, offset)
        header = parse_header(head, 0, len(head), total=size - offset)
        if header is None:
            raise CorruptEntryError(f"{path}: no whole frame at offset {offset}")
        length = frame_length(header)
        data = os.pread(fd, max(length, min(_READ_BLOCK, size - offset)), offset)
        if length <= _READ_BLOCK:  # a block worth keeping for the frames after this one
            self._blocks[number] = (offset, data, size)
        kind, _, value = verify(data, 0, uid.encode(), path)
        return kind, value

    def note_written(self, uid: str, name: str, kind: int, offset: int, end: int) -> None:
        """Take in a frame this process just appended at ``offset`` (ending at ``end``).

        No scan is needed to find it; when it directly follows what was scanned of its
        segment (as each frame of this process's own segment does), the scan moves past it.
        """
        with self._guard:
            number = self._numbers.get(name)
            if number is None:
                number = self._numbers[name] = len(self.names)
                self.names.append(name)
                self._scanned[name] = 0
            self.entries[uid] = pack(number, kind, offset)
            if self._scanned[name] == offset:
                self._scanned[name] = end

    def note_skipped(self, name: str, offset: int, end: int) -> None:
        """Move the scan of ``name`` past a frame of this process's that holds no entry."""
        with self._guard:
            if self._scanned.get(name) == offset:
                self._scanned[name] = end

    def unreadable_note(self) -> str:
        """Return a note naming the segments that could not be read ('' when none)."""
        if not self.unreadable:
            return ""
        reasons = "; ".join(sorted(self.unreadable.values())[:3])
        more = f" (and {len(self.unreadable) - 3} more)" if len(self.unreadable) > 3 else ""
        return f"; segments of this cache could not be read: {reasons}{more}"

    def close_gone(self) -> None:
        """Forget every segment; the next refresh starts from the files (after a compaction)."""
        with self._guard:
            self._reset()
            self._listed_mtime = -1
            self._loaded = False


_catalogs: dict[str, Catalog] = {}
_catalogs_guard = threading.Lock()


def catalog_for(entries_folder: str) -> Catalog:
    """Return this process's catalog of ``entries_folder``."""
    catalog = _catalogs.get(entries_folder)
    if catalog is None:
        with _catalogs_guard:
            catalog = _catalogs.setdefault(entries_folder, Catalog(entries_folder))
    return catalog


def _after_fork() -> None:
    # A lock held by another thread of the parent at the fork would never be released here.
    global _catalogs_guard
    _catalogs.clear()
    _catalogs_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def forget_catalog(entries_folder: str) -> None:
    """Drop the catalog of a folder that was removed or rewritten by a tool."""
    with _catalogs_guard:
        _catalogs.pop(entries_folder, None)
