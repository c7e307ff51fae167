"""Packing the entries of the older layout (``cache/<uid>.pkl|.npy``) into a segment."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._arrays import INLINE_ARRAY_BYTES, array_nbytes, file_chunks, inline_value
from ._catalog import catalog_for
from ._durable import sync_dir, write_atomic
from ._frames import ARRAY, ARRAY_FILE, CorruptEntryError
from ._inspect import ARRAYS
from ._legacy import LEGACY_FOLDER, legacy_uids, read_legacy, remove_legacy
from ._liveness import _fresh_lock
from ._segments import writer_for


@dataclass
class MigrateReport:
    """What [`migrate`][assay_steps.migrate] did to one entries folder.

    Attributes:
        folder: the entries folder (absolute).
        migrated: uids packed into a segment (their old files deleted).
        shadowed: uids whose old files a frame already superseded (deleted, not packed).
        corrupt: ``(uid, why)`` of old entries that fail verification: left in place.
        busy: the older layout's locks are fresh (an older assay is running): nothing done.

    """

    folder: str
    migrated: list[str] = field(default_factory=list)
    shadowed: list[str] = field(default_factory=list)
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    busy: bool = False


def migrate(entries_folder: str | Path) -> MigrateReport:
    """Pack the entries of the older layout (``cache/<uid>.pkl|.npy``) into a segment.

    Each old entry is verified, then written as a frame (small arrays inline, large ones as
    array files) stamped with its file's modification time, so that its age stays what it
    was. Once the frames are sealed and flushed, the old files and the ``locks/`` folder are
    deleted. A corrupt old entry is reported and left in place, never packed. Nothing is done
    while a lock of the older layout is fresh (an older assay is computing there).

    Examples:
        >>> migrate("nothing-old").migrated
        []

    """
    folder = os.path.abspath(entries_folder)
    report = MigrateReport(folder)
    legacy = os.path.join(folder, LEGACY_FOLDER)
    uids = legacy_uids(legacy)
    if _fresh_lock(folder):
        report.busy = True
        return report
    catalog = catalog_for(folder)
    catalog.refresh()
    for uid in uids:
        if uid in catalog.entries:  # a newer frame (or a clearing) is served instead
            report.shadowed.append(uid)
        elif _pack(folder, legacy, uid, report):
            report.migrated.append(uid)
    if report.migrated:
        writer = writer_for(folder)
        sealed = writer.seal(fsync=True)
        if sealed is not None:
            catalog.note_skipped(*sealed)
        sync_dir(writer.folder)
    for uid in report.migrated + report.shadowed:
        remove_legacy(legacy, uid)
    _remove_old_folders(folder)
    return report


def _pack(folder: str, legacy: str, uid: str, report: MigrateReport) -> bool:
    """Append the frame of one old entry; return False when it is corrupt (or gone)."""
    try:
        found = read_legacy(legacy, uid)
    except CorruptEntryError as error:
        report.corrupt.append((uid, str(error)))
        return False
    stamp = _legacy_stamp(legacy, uid)
    if found is None or stamp is None:
        return False  # removed meanwhile
    kind, value = found
    if kind == ARRAY:
        kind, value = _array_frame(folder, uid, np.asarray(value))
    writer = writer_for(folder)
    name, start, end = writer.append(kind, uid, value, stamp=stamp, fsync=False)
    catalog_for(folder).note_written(uid, name, kind, start, end)
    return True


def _legacy_stamp(legacy: str, uid: str) -> int | None:
    """Return the modification time of an old entry's file (its age), in nanoseconds."""
    for ext in (".pkl", ".npy"):
        with contextlib.suppress(FileNotFoundError):
            return os.lstat(os.path.join(legacy, uid + ext)).st_mtime_ns
    return None


def _array_frame(folder: str, uid: str, array: np.ndarray[Any, Any]) -> tuple[int, bytes]:
    if array_nbytes(array) <= INLINE_ARRAY_BYTES:
        return ARRAY, inline_value(array)
    arrays = os.path.join(folder, ARRAYS)
    os.makedirs(arrays, exist_ok=True)
    name = f"{uid}.{time.time_ns():x}{uuid.uuid4().hex[:6]}.npy"
    write_atomic(os.path.join(arrays, name), file_chunks(array, uid), fsync=True)
    return ARRAY_FILE, name.encode()


def _remove_old_folders(folder: str) -> None:
    """Remove the older layout's ``locks/``, and ``cache/`` once nothing is left in it."""
    shutil.rmtree(os.path.join(folder, "locks"), ignore_errors=True)
    with contextlib.suppress(OSError):  # still holds corrupt entries, or files of the user
        os.rmdir(os.path.join(folder, LEGACY_FOLDER))
