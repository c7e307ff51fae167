"""Atomic file writes, and the deferred flush of many writes to stable storage.

Measured on a typical cloud disk, fsync costs ~3.5 ms per file. Files other than segments
(large arrays, configurations, job references) therefore go to a temporary name and are
renamed into place (atomic: a reader sees the old file or the new one, never a part).
Durability against power loss is obtained once per chunk — ``syncfs`` on the cache's file
system for such files, one flush of the segment for frames — or per file when a backend asks
for ``fsync="item"``. Every entry also carries a checksum, so an entry torn by a crash before
the flush is detected and recomputed, never returned.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import sys
import time
import uuid
from pathlib import Path

_TOKEN = uuid.uuid4().hex[:8]
_counter = itertools.count()
_libc = None
if sys.platform.startswith("linux"):  # syncfs is Linux-only; others fall back to sync
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syncfs  # noqa: B018 - probe that the symbol exists
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        _libc = None


def write_atomic(
    path: str | Path,
    chunks: list[bytes] | tuple[bytes, ...],
    *,
    fsync: bool,
) -> None:
    """Write ``chunks`` to ``path`` via a temporary file and a rename.

    The temporary file is created with ``O_EXCL | O_NOFOLLOW``: it must be new, and a link
    planted under its name is not followed.

    Args:
        path: Final name of the file.
        chunks: Its content.
        fsync: Flush the file and its folder to stable storage before returning.

    """
    # Unique per process and call; O_EXCL below guards against any remaining clash.
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{_TOKEN}{os.getpid()}-{next(_counter)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o644)
    size = sum(map(len, chunks))
    if len(chunks) > 1 and size < 2**16:
        chunks = [b"".join(chunks)]  # one system call for small files
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    except BaseException as error:
        os.close(fd)
        os.unlink(tmp)
        if isinstance(error, OSError) and error.strerror and error.filename is None:
            error.filename = os.fspath(path)  # a failed write names no file: say which one
        raise
    os.close(fd)
    os.replace(tmp, path)
    if fsync:
        sync_dir(os.path.dirname(path))


#: A temporary file older than this was left by a process killed while writing it.
LEFTOVER_SECONDS = 3600.0


def is_old_temporary(folder: str | Path, name: str) -> bool:
    """Return whether ``name`` in ``folder`` is a temporary file left by a killed writer.

    Temporary files are hidden (``.<name>...tmp``) and live for one write: one older than
    ``LEFTOVER_SECONDS`` belongs to no writer any more.
    """
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    try:
        return time.time() - os.lstat(os.path.join(folder, name)).st_mtime > LEFTOVER_SECONDS
    except OSError:
        return False


def remove_old_temporaries(folder: str | Path) -> None:
    """Remove the temporary files killed writers left in ``folder`` (best effort)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if is_old_temporary(folder, name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def sync_dir(folder: str | Path) -> None:
    """Flush a directory's entries (the renames) to stable storage."""
    if os.name != "posix":  # pragma: no cover - directories cannot be opened elsewhere
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(folder: Path) -> None:
    """Flush every pending write of the file system holding ``folder`` (one call per batch)."""
    if _libc is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            _libc.syncfs(fd)
        finally:
            os.close(fd)
    elif hasattr(os, "sync"):  # pragma: no cover - non-Linux POSIX
        os.sync()
