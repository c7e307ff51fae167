"""The read path of a step configuration's cache entries: find, verify, remember, decode.

An item's newest frame is found through the process's catalog (see ``_catalog.py``), verified
(its uid and checksum) and decoded: a pickle is unpickled on every hit, an array is read as a
read-only array (inline, or mapped from its file under ``arrays/``). Small entries are
remembered by the store, within a budget, so that warm hits do not verify them again. Entries
of the older one-file-per-item layout are still read. The store (see ``_store.py``) adds the
writing.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import Any, Literal

from ._arrays import read_file
from ._arrays import read_inline as _read_inline_array
from ._catalog import Catalog
from ._frames import (
    ARRAY,
    ARRAY_FILE,
    ERROR,
    RESULT,
    CorruptEntryError,
    SegmentGoneError,
)
from ._legacy import read_legacy
from ._locations import kind_of
from ._paths import StepPaths

#: Pickled entries up to this size are remembered by the store that read or wrote them, so
#: warm hits do not verify them again. They are unpickled on every hit (no sharing).
MEMO_BYTES = 64 * 2**10
#: A store remembers at most this many bytes of entries (unless ``keep_in_ram``): memory stays
#: bounded however many items a sweep has.
MEMO_BUDGET = 8 * 2**20

Status = Literal["success", "error"]
_EXT = {RESULT: "pkl", ERROR: "err", ARRAY: "npy", ARRAY_FILE: "npy"}
_ENTRY_OVERHEAD = 200  # bytes of the uid, the tuple and the dict slot of a remembered entry


def _array_name(value: memoryview, uid: str, folder: str) -> str:
    """Return the array file name a frame holds, refusing one that could lead elsewhere."""
    name = bytes(value).decode(errors="replace")
    if not name.startswith(f"{uid}.") or "/" in name or "\\" in name or "\0" in name:
        raise CorruptEntryError(f"{folder}: item {uid!r} names the array file {name!r}")
    return name


class EntryReader:
    """The read path of an ``EntryStore``: its entries found, verified and decoded.

    The state it reads is set up by ``EntryStore.__init__``.
    """

    paths: StepPaths
    keep_in_ram: bool
    trust: bool
    memo: dict[str, tuple[str, Any]]
    _memo_bytes: int
    _recent: tuple[str, Any] | None
    config_written: bool
    _folders_made: bool
    _fresh: bool
    _forgotten: bool
    on_first_write: Callable[[], None] | None
    folder: str
    catalog: Catalog
    _legacy: str
    _has_legacy: bool
    _arrays: str

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
            # Defined with the store (a pickled error names its class by module), which
            # imports this module: imported on this path only.
            from ._store import UntrustedEntryError

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
