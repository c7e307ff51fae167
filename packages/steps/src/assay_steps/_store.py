"""One step configuration's cache entries, packed as frames in segment files.

An entry is a frame (see ``_frames.py``) appended to the writing process's own segment (see
``_segments.py``); the process's catalog (see ``_catalog.py``) says where each item's newest
frame lies. A result is pickled into its frame; a numpy array is stored inline up to
``INLINE_ARRAY_BYTES`` and in its own memory-mappable ``.npy`` file under ``arrays/`` above
(see ``_arrays.py``); a cached error is a pickled ``CachedError``; clearing an item appends a
frame that says so. Entries of the older one-file-per-item layout are still read.

Every read verifies the frame's uid and checksum: an entry that fails is corrupt, reported as
missing (and recomputed) or, in read-only mode, raised.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

import cloudpickle  # type: ignore[import-untyped]

from ._arrays import INLINE_ARRAY_BYTES, file_chunks, inline_value, is_plain_array, read_file
from ._arrays import read_inline as _read_inline_array
from ._catalog import Catalog, catalog_for, kind_of
from ._durable import remove_old_temporaries, sync_filesystem, write_atomic
from ._frames import (
    ARRAY,
    ARRAY_FILE,
    DELETED,
    ERROR,
    RESULT,
    CorruptEntryError,
    SegmentGoneError,
)
from ._legacy import read_legacy, remove_legacy
from ._paths import StepPaths
from ._segments import writer_for

__all__ = ["CachedError", "CorruptEntryError", "EntryStore", "UntrustedEntryError"]

#: Pickled entries up to this size are remembered by the store that read or wrote them, so
#: warm hits do not verify them again. They are unpickled on every hit (no sharing).
MEMO_BYTES = 64 * 2**10
#: A store remembers at most this many bytes of entries (unless ``keep_in_ram``): memory stays
#: bounded however many items a sweep has.
MEMO_BUDGET = 8 * 2**20

Status = Literal["success", "error"]
_BUILTIN_SCALARS = frozenset({str, bytes, int, float, bool, complex, type(None)})
_EXT = {RESULT: "pkl", ERROR: "err", ARRAY: "npy", ARRAY_FILE: "npy"}
_ENTRY_OVERHEAD = 200  # bytes of the uid, the tuple and the dict slot of a remembered entry


def _array_name(value: memoryview, uid: str, folder: str) -> str:
    """Return the array file name a frame holds, refusing one that could lead elsewhere."""
    name = bytes(value).decode(errors="replace")
    if not name.startswith(f"{uid}.") or "/" in name or "\\" in name or "\0" in name:
        raise CorruptEntryError(f"{folder}: item {uid!r} names the array file {name!r}")
    return name


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


class EntryStore:
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

    def refresh(self) -> None:
        """Take in the entries other processes wrote since this process last looked."""
        # After forget(), other processes wrote: their new segments are listed even where a
        # network file system still shows the folder's old modification time.
        self.catalog.refresh(relist=self._forgotten)
        self._fresh = True
        self._forgotten = False
        if self._folders_made and not os.path.isdir(self.folder):
            # Removed since (rm -rf in a notebook): the next write makes a whole folder again,
            # with its marker, code record and configuration.
            self._folders_made = self.config_written = False
        # Looked for once per refresh: a miss then costs no system call for the old layout.
        self._has_legacy = os.path.isdir(self._legacy)

    def _locate(self, uid: str) -> int | None:
        if not self._fresh:  # forget() was called: another process may have written since
            self.refresh()
        return self.catalog.location(uid)

    # ------------------------------------------------------------------ reading

    def read(self, uid: str) -> tuple[Status, Any] | None:
        """Return ``("success", value)``, ``("error", CachedError)`` or None if missing.

        Raises:
            CorruptEntryError: The entry exists but fails verification.

        """
        memo = self.memo.get(uid)
        if memo is not None:
            return self._decode(uid, *memo)
        recent = self._recent
        if recent is not None and recent[0] == uid:
            self._recent = None
            return "success", recent[1]
        found = self._load(uid)
        return None if found is None else self._decode(uid, *found)

    def peek(self, uid: str) -> Status | None:
        """Return the status of a verified entry, or None if missing, without decoding it.

        Raises:
            CorruptEntryError: The entry exists but fails verification.

        """
        memo = self.memo.get(uid)
        if memo is None:
            memo = self._load(uid)
            if memo is None:
                return None
            if memo[0] == "npy":  # the caller reads it next: keep the verified array
                self._recent = (uid, memo[1])
        return "error" if memo[0] == "err" else "success"

    def _load(self, uid: str) -> tuple[str, Any] | None:
        location = self._locate(uid)
        if location is None:
            if not self._has_legacy or self.catalog.cleared(uid):
                return None
            return self._load_legacy(uid)
        try:
            kind, value = self.catalog.read(uid, location)
        except SegmentGoneError:
            # Compacted since this process looked: its frame now lies in another segment.
            self.catalog.close_gone()
            self._forgotten = True
            self.refresh()
            location = self.catalog.location(uid)
            if location is None:
                return None
            kind, value = self.catalog.read(uid, location)
        raw: Any
        if kind == ARRAY:
            raw = _read_inline_array(value, f"{self.folder}: item {uid}")
        elif kind == ARRAY_FILE:
            path = os.path.join(self._arrays, _array_name(value, uid, self.folder))
            try:
                raw = read_file(path, uid)
            except FileNotFoundError:  # e.g. its frame reached the disk before it, then a crash
                missing = f"{path}: the array file of item {uid!r} is missing"
                raise CorruptEntryError(missing) from None
        else:
            raw = bytes(value)
        return self._remember(uid, _EXT[kind], raw)

    def _load_legacy(self, uid: str) -> tuple[str, Any] | None:
        found = read_legacy(self._legacy, uid)
        if found is None:
            return None
        return self._remember(uid, _EXT[found[0]], found[1])

    def _remember(self, uid: str, ext: str, raw: Any) -> tuple[str, Any]:
        # Arrays are remembered only on request: each map holds memory of the file.
        if self.keep_in_ram:
            self.memo[uid] = (ext, raw)
        elif ext != "npy" and len(raw) <= MEMO_BYTES:
            self._memo_bytes += len(raw) + _ENTRY_OVERHEAD
            if self._memo_bytes > MEMO_BUDGET:  # start again rather than grow without end
                self.memo.clear()
                self._memo_bytes = len(raw) + _ENTRY_OVERHEAD
            self.memo[uid] = (ext, raw)
        return ext, raw

    def _decode(self, uid: str, ext: str, raw: Any) -> tuple[Status, Any]:
        if ext == "npy":
            return "success", raw  # read-only array: safe to hand out repeatedly
        if not self.trust:
            raise UntrustedEntryError(
                f"item {uid!r} of {self.folder} is a pickle entry and trust=False refuses to "
                "unpickle it (unpickling can run code); only array entries are read"
            )
        value = pickle.loads(raw)  # a fresh object on each hit
        return ("error", value) if ext == "err" else ("success", value)

    def statuses(self, uids: list[str]) -> list[Status | None]:
        """Return the verified status of each item, as ``status`` does, in one pass.

        The warm path of a run over many items: entries read together are verified from the
        blocks read for their neighbours, without a system call each.
        """
        if not self._fresh:
            self.refresh()
        memo, entries, kept = self.memo, self.catalog.entries, self.catalog.read_kept
        found: list[Status | None] = []
        for uid in uids:
            remembered = memo.get(uid)
            if remembered is not None:
                found.append("error" if remembered[0] == "err" else "success")
                continue
            location = entries.get(uid)
            kind = -1 if location is None else kind_of(location)
            raw = kept(uid, location) if location is not None and kind in (RESULT, ERROR) else None
            if raw is None:
                found.append(self.status(uid))  # read, or arrays, cleared, old layout...
                continue
            self._remember(uid, _EXT[kind], raw)
            found.append("error" if kind == ERROR else "success")
        return found

    def status(self, uid: str) -> Status | None:
        """Return the status of the entry, verified (corrupt counts as missing)."""
        try:
            return self.peek(uid)
        except CorruptEntryError:
            return None

    def exists(self, uid: str) -> bool:
        """Return whether some entry exists for ``uid`` (not verified)."""
        if uid in self.memo or self._locate(uid) is not None:
            return True
        if not self._has_legacy or self.catalog.cleared(uid):
            return False
        base = os.path.join(self._legacy, uid)
        return os.path.exists(f"{base}.pkl") or os.path.exists(f"{base}.npy")

    def holds_error(self, uid: str) -> bool:
        """Return whether the entry of ``uid`` is a cached error, from the catalog alone.

        Cheap (nothing verified): a corrupt error entry stops a reader as an error does.
        """
        memo = self.memo.get(uid)
        if memo is not None:
            return memo[0] == "err"
        location = self._locate(uid)
        if location is not None:
            return kind_of(location) == ERROR
        if not self._has_legacy or self.catalog.cleared(uid):
            return False
        try:
            found = read_legacy(self._legacy, uid)
        except CorruptEntryError:
            return False
        return found is not None and found[0] == ERROR

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
