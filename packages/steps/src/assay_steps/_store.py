"""One step configuration's cache entries, packed as frames in segment files.

An entry is a frame (see ``_frames.py``) appended to the writing process's own segment (see
``_segments.py``); the process's catalog (see ``_catalog.py``) says where each item's newest
frame lies. A result is pickled into its frame; a numpy array is stored inline up to
``INLINE_ARRAY_BYTES`` and in its own memory-mappable ``.npy`` file under ``arrays/`` above
(see ``_arrays.py``); a cached error is a pickled ``CachedError``; clearing an item appends a
frame that says so. Entries of the older one-file-per-item layout are still read.

Every read verifies the frame's uid and checksum: an entry that fails is corrupt, reported as
missing (and recomputed) or, in read-only mode, raised. The read path is ``_reader.py``'s; the
store adds the writing.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import time
import uuid
from collections.abc import Callable
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from ._arrays import INLINE_ARRAY_BYTES, file_chunks, inline_value, is_plain_array
from ._catalog import Catalog, catalog_for
from ._durable import remove_old_temporaries, sync_filesystem, write_atomic
from ._frames import (
    ARRAY,
    ARRAY_FILE,
    DELETED,
    ERROR,
    RESULT,
    CorruptEntryError,
)
from ._legacy import remove_legacy
from ._paths import StepPaths
from ._reader import MEMO_BYTES, EntryReader
from ._segments import writer_for

__all__ = ["CachedError", "CorruptEntryError", "EntryStore", "UntrustedEntryError"]

_BUILTIN_SCALARS = frozenset({str, bytes, int, float, bool, complex, type(None)})


class UntrustedEntryError(RuntimeError):
    """A pickle entry read with ``trust=False``: unpickling could run code, so it is refused."""


@dataclasses.dataclass(frozen=True)
class CachedError:
    """An exception recorded in the cache: its type, message and formatted traceback."""

    type_name: str
    message: str
    traceback: str
    exception: bytes | None  # the pickled exception when it could be pickled

    def rebuild(self) -> BaseException:
        """Return the exception to raise, with the original traceback attached as a note."""
        exc: BaseException | None = None
        if self.exception is not None:
            try:
                exc = pickle.loads(self.exception)
            except Exception:  # class moved or unpicklable state: fall back to a plain error
                exc = None
        if not isinstance(exc, BaseException):
            exc = RuntimeError(f"{self.type_name}: {self.message}")
        note = f"cached error, original traceback:\n{self.traceback}"
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        else:  # pragma: no cover - Python 3.10
            exc.__cause__ = RuntimeError(note)
        return exc


def _short_repr(value: Any) -> str:
    """Return the start of ``repr(value)`` for a message, even when that repr fails."""
    try:
        return f"{value!r:.60}"
    except Exception:
        return "repr failed"


class EntryStore(EntryReader):
    """Reads and writes the cache entries of one step configuration.

    Args:
        paths: Layout of the step folder.
        keep_in_ram: Remember every entry read or written (arrays as read-only maps, other
            results as bytes unpickled on each hit); otherwise only small pickles, and at
            most ``MEMO_ENTRIES`` of them.
        fsync: ``"batch"`` (flush once per chunk with ``sync``), ``"off"`` (leave it to
            the system) or ``"item"`` (flush every frame as it is written).
        trust: False refuses to unpickle entries (only arrays are read).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> store = EntryStore(StepPaths(Path(tempfile.mkdtemp()), "Double-0"))
        >>> store.write_result("item", 42); store.sync()
        >>> store.read("item")
        ('success', 42)

    """

    def __init__(
        self,
        paths: StepPaths,
        *,
        keep_in_ram: bool = False,
        fsync: str = "batch",
        trust: bool = True,
    ) -> None:
        self.paths = paths
        self.keep_in_ram = keep_in_ram
        self.trust = trust
        self.fsync_item = fsync == "item"
        self.fsync_batch = fsync == "batch"
        #: Entries this store verified and remembers: uid -> (kind, raw bytes or array).
        self.memo: dict[str, tuple[str, Any]] = {}
        self._memo_bytes = 0
        self._recent: tuple[str, Any] | None = None
        self.config_written = False  # config.json of the step folder checked or written
        self._folders_made = False
        self._fresh = False  # the catalog took in what other processes wrote, since forget()
        self._forgotten = False
        self._arrays_unsynced = False
        self._writer_checked = False
        #: Called once before this store first writes (records what the step folder holds).
        self.on_first_write: Callable[[], None] | None = None
        # Joined as text: pathlib costs more than the rest of a warm hit's set-up.
        version = f"code-{paths.code}" if paths.code else ""
        self.folder = os.path.abspath(os.path.join(paths.base_folder, paths.step_uid, version))
        self.catalog: Catalog = catalog_for(self.folder)
        self._legacy = os.path.join(self.folder, "cache")
        self._has_legacy = True  # until a refresh looked
        self._arrays = os.path.join(self.folder, "arrays")

    def make_folders(self) -> None:
        """Create the entries folder (once per store), clearing what killed writers left."""
        if not self._folders_made:
            if self.on_first_write is not None:
                self.on_first_write()
            os.makedirs(self.folder, exist_ok=True)
            remove_old_temporaries(self._arrays)  # a worker killed while writing an array
            remove_old_temporaries(self.paths.step_folder)  # ... or the configuration
            self._folders_made = True

    # ------------------------------------------------------------------ writing

    def write_result(self, uid: str, value: Any) -> None:
        """Store a result, superseding whatever entry ``uid`` had."""
        self.make_folders()
        if is_plain_array(value):
            self._write_array(uid, value)
            return
        if type(value) in _BUILTIN_SCALARS:  # e.g. a run record's text: cloudpickle adds nothing
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            try:
                payload = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as error:  # pickle raises TypeError, PicklingError, ...
                kind = type(value)
                raise TypeError(
                    f"{self.paths.step_uid}: the result of item {uid!r}, a "
                    f"{kind.__module__}.{kind.__qualname__} ({_short_repr(value)}), cannot be "
                    f"stored in the cache ({error}); expected a picklable result: return a list "
                    "rather than a generator, plain data rather than an open file or a lock"
                ) from error
        self._append(uid, RESULT, payload)
        self._remember_written(uid, "pkl", payload)

    def write_error(self, uid: str, error: CachedError) -> None:
        """Store a cached error, superseding whatever entry ``uid`` had."""
        self.make_folders()
        payload = pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL)
        self._append(uid, ERROR, payload)
        self._remember_written(uid, "err", payload)

    def _write_array(self, uid: str, array: Any) -> None:
        if array.nbytes <= INLINE_ARRAY_BYTES:
            self._append(uid, ARRAY, inline_value(array))
        else:
            os.makedirs(self._arrays, exist_ok=True)
            name = f"{uid}.{time.time_ns():x}{uuid.uuid4().hex[:6]}.npy"
            chunks = file_chunks(array, uid)
            write_atomic(os.path.join(self._arrays, name), chunks, fsync=self.fsync_item)
            self._arrays_unsynced = True
            self._append(uid, ARRAY_FILE, name.encode())
        self.forget(uid)
        self._fresh = True  # this process's own write is in the catalog already

    def _append(self, uid: str, kind: int, value: bytes) -> None:
        stamp = max(time.time_ns(), self.catalog.stamp(uid) + 1)
        writer = writer_for(self.folder)
        if not self._writer_checked:  # once per chunk: the folder may have been removed
            writer.check()
            self._writer_checked = True
        name, start, end = writer.append(kind, uid, value, stamp=stamp, fsync=self.fsync_item)
        self.catalog.note_written(uid, name, kind, start, end)
        if self.fsync_item and writer.opened_since_sync:
            sync_filesystem(self.paths.entries_folder)  # the new segment's name, durable too
            writer.opened_since_sync = False

    def _remember_written(self, uid: str, ext: str, payload: bytes) -> None:
        self._recent = None
        if self.keep_in_ram or len(payload) <= MEMO_BYTES:
            self._remember(uid, ext, payload)
        else:
            self.memo.pop(uid, None)

    def sync(self) -> None:
        """Seal what this process wrote since the last call (flushed with ``fsync="batch"``)."""
        writer = writer_for(self.folder)
        # A new segment or array file: its name (and folders) must be durable too, and one
        # flush of the whole file system covers them and the frames; else one flush of the
        # segment is enough.
        whole = self.fsync_batch and (writer.opened_since_sync or self._arrays_unsynced)
        if writer.name:
            sealed = writer.seal(fsync=self.fsync_batch and not whole)
            if sealed is not None:
                self.catalog.note_skipped(*sealed)
        if whole:
            sync_filesystem(self.paths.entries_folder)
        writer.opened_since_sync = False
        self._arrays_unsynced = False
        self._writer_checked = False

    def clear(self, uid: str) -> None:
        """Drop the entry of ``uid``: a clearing frame supersedes it; older files go."""
        self.forget(uid)
        if self._locate(uid) is not None:
            # Not flushed here (a retry clears many items): the next seal flushes it, and a
            # clearing frame lost to a power cut only leaves an entry that was valid anyway.
            self.make_folders()
            self._append(uid, DELETED, b"")
        remove_legacy(self._legacy, uid)

    def forget(self, uid: str) -> None:
        """Drop the in-memory copy of ``uid`` so that the next read goes to disk."""
        self.memo.pop(uid, None)
        self._recent = None
        self._fresh = False
        self._forgotten = True
