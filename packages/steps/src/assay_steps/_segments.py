"""Segment files: each writing process appends the frames it computes to a file of its own.

``segments/<time>-<host>-<pid>-<token>.seg`` is created exclusively (``O_EXCL | O_NOFOLLOW``)
by the one process that ever writes it, and only grows: frames are appended, never changed in
place. So no two processes write one file, and no lock is needed, on one host or across hosts
on a shared file system. A crash leaves, at worst, a torn last frame, which fails its checksum
and is ignored; every frame before it stays readable.

At the end of each task (a chunk of items) the writer *seals* what it appended: a ``SEAL``
frame counting the frames since the previous seal, and, with ``fsync="batch"``, one flush of
the file to stable storage. A segment that reaches ``MAX_SEGMENT_BYTES`` is left for a new
one. Writers live per process and folder, and a forked child starts its own.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid

from ._frames import MAX_UID, SEAL, encode

#: A writer moves to a new segment file once its current one is this large.
MAX_SEGMENT_BYTES = 2**30
SEGMENTS = "segments"
SUFFIX = ".seg"
_HOST = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64] or "host"
_WRITE_AT_ONCE = 2**20  # frames up to this size are joined and written in one system call

_writers: dict[str, SegmentWriter] = {}
_writers_guard = threading.Lock()


def new_name() -> str:
    """Return a new segment file name: creation time first, so that names sort by age."""
    return f"{time.time_ns():016x}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"


def create_exclusive(path: str) -> int:
    """Create ``path`` for writing; it must not exist, and a link there is not followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)


class SegmentWriter:
    """Appends frames to this process's segment of one entries folder.

    Examples:
        >>> import tempfile
        >>> writer = SegmentWriter(tempfile.mkdtemp())
        >>> name, start, end = writer.append(1, "item", b"value", stamp=1, fsync=False)
        >>> start, end
        (0, 49)

    """

    def __init__(self, entries_folder: str) -> None:
        self.folder = os.path.join(entries_folder, SEGMENTS)
        self.pid = os.getpid()
        self.name = ""
        self._fd = -1
        self._size = 0
        self._unsealed = 0
        #: A new segment file was created since the store last flushed its folder.
        self.opened_since_sync = False
        self._guard = threading.Lock()  # threads of one process share the writer

    def _open(self) -> None:
        os.makedirs(self.folder, exist_ok=True)
        name = new_name()
        self._fd = create_exclusive(os.path.join(self.folder, name))
        self.name, self._size, self._unsealed = name, 0, 0
        self.opened_since_sync = True

    def append(
        self, kind: int, uid: str, value: bytes | memoryview, *, stamp: int, fsync: bool
    ) -> tuple[str, int, int]:
        """Append one frame; return the segment's name and where the frame starts and ends."""
        raw_uid = uid.encode()
        if len(raw_uid) > MAX_UID:
            raise ValueError(f"item uid of {len(raw_uid)} bytes; expected at most {MAX_UID}")
        chunks = encode(kind, raw_uid, stamp, value)
        with self._guard:
            if self._fd < 0 or self._size >= MAX_SEGMENT_BYTES:
                self._roll()
            offset = self._size
            self._write(chunks, offset)
            if fsync:
                os.fsync(self._fd)
            self._unsealed += 1
            return self.name, offset, self._size

    def _write(self, chunks: list[bytes], offset: int) -> None:
        size = sum(map(len, chunks))
        if size <= _WRITE_AT_ONCE:
            chunks = [b"".join(chunks)]
        position = offset
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    # At an explicit offset: after a failed write cut back below, the file's
                    # position would otherwise still be past the cut.
                    written = os.pwrite(self._fd, view, position)
                    view, position = view[written:], position + written
        except BaseException as error:
            # A torn frame would hide every frame appended after it from readers: cut it off,
            # or leave this file for a new one if even that fails.
            try:
                os.ftruncate(self._fd, offset)
            except OSError:
                self._close()
            if isinstance(error, OSError) and error.strerror and error.filename is None:
                error.filename = os.path.join(self.folder, self.name)  # a full disk says where
            raise
        self._size = offset + size

    def seal(self, *, fsync: bool) -> tuple[str, int, int] | None:
        """Mark the end of a chunk: a ``SEAL`` frame, then one flush if ``fsync``.

        Returns where the seal frame lies (segment, start, end); None when nothing was
        written since the last seal.
        """
        with self._guard:
            if self._fd < 0 or not self._unsealed:
                return None
            count = self._unsealed.to_bytes(8, "little")
            start = self._size
            self._write(encode(SEAL, b"", time.time_ns(), count), start)
            self._unsealed = 0
            if fsync:
                os.fdatasync(self._fd) if hasattr(os, "fdatasync") else os.fsync(self._fd)
            return self.name, start, self._size

    def still_in_place(self) -> bool:
        """Return whether this writer's file is still at its path (not removed or moved)."""
        if self._fd < 0:
            return True
        try:
            here = os.lstat(os.path.join(self.folder, self.name))
        except OSError:
            return False
        mine = os.fstat(self._fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    def check(self) -> None:
        """Leave a file that was removed or moved away for a new one at the folder's path.

        A cache folder deleted or moved while the process lives must not swallow what the
        process writes next: frames appended to a file no longer in the folder are lost to
        every reader of the folder.
        """
        with self._guard:
            if not self.still_in_place():
                self._close()

    def _roll(self) -> None:
        self._close()
        self._open()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1


def writer_for(entries_folder: str) -> SegmentWriter:
    """Return this process's writer for ``entries_folder`` (a new one in a forked child)."""
    writer = _writers.get(entries_folder)
    if writer is None or writer.pid != os.getpid():
        with _writers_guard:
            writer = _writers.get(entries_folder)
            if writer is None or writer.pid != os.getpid():
                writer = SegmentWriter(entries_folder)
                _writers[entries_folder] = writer
    return writer


def _forget_parent_writers() -> None:
    # The parent's descriptors stay open in the child, but the child never writes to them;
    # the guard may have been held by another thread of the parent at the fork.
    global _writers_guard
    _writers.clear()
    _writers_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_writers)
