"""One step configuration's cache entries: atomic, checksummed files, one per item.

Entries live in ``cache/`` and are named after the item uid:

- ``<uid>.npy``: a numpy array result, a standard ``.npy`` file followed by a 64-byte trailer
  (magic, data length, xxh3-128 of the header, of the data, and of a sample of the data);
  read back memory-mapped and read-only.
- ``<uid>.pkl``: any other result, ``MAGIC + xxh3-128(payload) + cloudpickle payload``, or a
  cached error (type, message, traceback) under another magic.

A lookup opens at most two names: O(1) in the number of entries, no index. An entry whose
size, magic or checksum does not match is corrupt: it is reported as missing (and
recomputed) or, in read-only mode, raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pickle
import struct
from collections.abc import Callable
from typing import Any, Literal

import cloudpickle  # type: ignore[import-untyped]
import numpy as np
import xxhash

from ._durable import sync_filesystem, write_atomic
from ._paths import StepPaths

PICKLE_MAGIC = b"ASSAYP1\n"
ERROR_MAGIC = b"ASSAYE1\n"
NPY_MAGIC = b"ASSAYN1\n"
_TRAILER = struct.Struct("<8sQ16s16s16s")
#: Arrays up to this size have their whole data checksummed on every read; larger ones are
#: memory-mapped and checked by size, header and a 512 KiB sample (a full pass would cost
#: several times the memory-mapped read itself).
FULL_VERIFY_BYTES = 16 * 2**20
_SAMPLE = 256 * 2**10
#: Pickled entries up to this size are remembered by the step instance that read or wrote
#: them, so warm hits do not touch the disk. They are unpickled on every hit (no sharing).
MEMO_BYTES = 64 * 2**10

Status = Literal["success", "error"]
_BUILTIN_SCALARS = frozenset({str, bytes, int, float, bool, complex, type(None)})


class CorruptEntryError(RuntimeError):
    """A cache entry exists but fails its size, magic or checksum verification."""


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


def _sample(data: memoryview) -> bytes:
    return bytes(data[:_SAMPLE]) + bytes(data[-_SAMPLE:])


def _digest(data: bytes | memoryview) -> bytes:
    return xxhash.xxh3_128_digest(data)


def _npy_chunks(array: np.ndarray[Any, Any]) -> list[bytes]:
    # ascontiguousarray returns at least one dimension: reshape, or a 0-d array comes back (1,).
    data = np.ascontiguousarray(array).reshape(array.shape)
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(header, np.lib.format.header_data_from_array_1_0(data))
    head = header.getvalue()
    body = data.reshape(-1).view(np.uint8).data if data.size else memoryview(b"")
    trailer = _TRAILER.pack(
        NPY_MAGIC,
        body.nbytes,
        _digest(head),
        # Only arrays that are verified in full on read pay for a full digest on write.
        _digest(body) if body.nbytes <= FULL_VERIFY_BYTES else bytes(16),
        _digest(_sample(body)),
    )
    return [head, body, trailer]  # type: ignore[list-item]


def _open_entry(path: str) -> io.BufferedReader:
    """Open an entry for reading; an entry that exists but cannot be read counts as corrupt."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise
    except OSError as error:  # permission 000, I/O error: detected, recomputed or reported
        raise CorruptEntryError(f"{path}: unreadable ({error.strerror})") from None


def _read_npy(path: str) -> np.ndarray[Any, Any]:
    size = os.stat(path).st_size
    with _open_entry(path) as f:
        try:
            version = np.lib.format.read_magic(f)
            reader = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if reader is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, dtype = reader(f)
        except Exception as error:  # numpy's parser raises ValueError, SyntaxError, TokenError...
            raise CorruptEntryError(f"{path}: unreadable .npy header ({error})") from None
        offset = f.tell()
        f.seek(0)
        head = f.read(offset)
        f.seek(max(size - _TRAILER.size, 0))
        magic, length, head_sum, data_sum, sample_sum = _TRAILER.unpack(
            f.read(_TRAILER.size).rjust(_TRAILER.size, b"\0")
        )
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if magic != NPY_MAGIC or length != expected or size != offset + length + _TRAILER.size:
        raise CorruptEntryError(f"{path}: truncated or not written by assay (size {size})")
    if _digest(head) != head_sum:
        raise CorruptEntryError(f"{path}: header checksum mismatch")
    if length == 0:
        array = np.empty(shape, dtype=dtype)
        array.flags.writeable = False
        return array
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                       order="F" if fortran else "C")  # fmt: skip
    body = np.asarray(mapped).reshape(-1).view(np.uint8).data
    if length <= FULL_VERIFY_BYTES:
        if _digest(body) != data_sum:
            raise CorruptEntryError(f"{path}: data checksum mismatch")
    elif _digest(_sample(body)) != sample_sum:
        raise CorruptEntryError(f"{path}: data checksum mismatch (sampled)")
    return mapped


def _read_pickle(path: str) -> tuple[str, bytes]:
    with _open_entry(path) as f:
        raw = f.read()
    head = len(PICKLE_MAGIC) + 16
    magic = raw[: len(PICKLE_MAGIC)]
    if magic not in (PICKLE_MAGIC, ERROR_MAGIC) or len(raw) < head:
        raise CorruptEntryError(f"{path}: truncated or not written by assay")
    payload = raw[head:]
    if _digest(payload) != raw[len(PICKLE_MAGIC) : head]:
        raise CorruptEntryError(f"{path}: checksum mismatch")
    return ("err" if magic == ERROR_MAGIC else "pkl"), payload


def _short_repr(value: Any) -> str:
    """Return the start of ``repr(value)`` for a message, even when that repr fails."""
    try:
        return f"{value!r:.60}"
    except Exception:
        return "repr failed"


def _is_plain_array(value: Any) -> bool:
    return type(value) is np.ndarray and not value.dtype.hasobject


class EntryStore:
    """Reads and writes the cache entries of one step configuration.

    Args:
        paths: Layout of the step folder.
        keep_in_ram: Remember every entry read or written (arrays as read-only maps, other
            results as bytes unpickled on each hit); otherwise only small pickles are kept.
        fsync: ``"batch"`` (flush once per batch with :meth:`sync`), ``"off"`` (leave it to
            the system) or ``"item"`` (fsync every file and its folder before its rename).

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
        self._memo: dict[str, tuple[str, Any]] = {}
        #: Entries this store verified and remembers: uid -> (kind, raw bytes or array).
        self.memo = self._memo
        self._recent: tuple[str, Any] | None = None
        self.config_written = False  # config.json of the step folder checked or written
        self._folders_made = False
        #: Called once before this store first writes (records what the step folder holds).
        self.on_first_write: Callable[[], None] | None = None
        # Plain strings: pathlib costs more than the system calls on this hot path.
        self._prefix = f"{self.paths.cache_folder}{os.sep}"

    def _path(self, uid: str, ext: str) -> str:
        return f"{self._prefix}{uid}.{ext}"

    def make_folders(self) -> None:
        """Create the cache, lock and job folders (once per store)."""
        if not self._folders_made:
            if self.on_first_write is not None:
                self.on_first_write()
            for folder in (self.paths.cache_folder, self.paths.lock_folder):
                folder.mkdir(parents=True, exist_ok=True)
            self._folders_made = True

    # ------------------------------------------------------------------ reading

    def read(self, uid: str) -> tuple[Status, Any] | None:
        """Return ``("success", value)``, ``("error", CachedError)`` or None if missing.

        Raises:
            CorruptEntryError: The entry exists but fails verification.

        """
        memo = self._memo.get(uid)
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
        memo = self._memo.get(uid)
        if memo is None:
            memo = self._load(uid)
            if memo is None:
                return None
            if memo[0] == "npy":  # the caller reads it next: keep the verified map
                self._recent = (uid, memo[1])
        return "error" if memo[0] == "err" else "success"

    def _load(self, uid: str) -> tuple[str, Any] | None:
        raw: Any
        try:
            ext, raw = _read_pickle(self._path(uid, "pkl"))
        except FileNotFoundError:
            try:
                ext, raw = "npy", _read_npy(self._path(uid, "npy"))
            except FileNotFoundError:
                return None
        # Arrays are remembered only on request: each map holds a file descriptor.
        if self.keep_in_ram or (ext != "npy" and len(raw) <= MEMO_BYTES):
            self._memo[uid] = (ext, raw)
        return ext, raw

    def _decode(self, uid: str, ext: str, raw: Any) -> tuple[Status, Any]:
        if ext == "npy":
            return "success", raw  # read-only memory map: safe to hand out repeatedly
        if not self.trust:
            raise UntrustedEntryError(
                f"{self._path(uid, 'pkl')} is a pickle entry and trust=False refuses to "
                "unpickle it (unpickling can run code); only .npy array entries are read"
            )
        value = pickle.loads(raw)  # a fresh object on each hit
        return ("error", value) if ext == "err" else ("success", value)

    def status(self, uid: str) -> Status | None:
        """Return the status of the entry without loading it (corrupt counts as missing)."""
        try:
            return self.peek(uid)
        except CorruptEntryError:
            return None

    def exists(self, uid: str) -> bool:
        """Return whether some entry file exists for ``uid`` (not verified)."""
        if uid in self._memo:
            return True
        exists = os.path.exists
        return exists(f"{self._prefix}{uid}.pkl") or exists(f"{self._prefix}{uid}.npy")

    def holds_error(self, uid: str) -> bool:
        """Return whether the entry of ``uid`` is a cached error, from its magic alone.

        Cheap (eight bytes read, nothing verified): an array entry is never an error, and a
        corrupt error entry stops a reader as an error does.
        """
        memo = self._memo.get(uid)
        if memo is not None:
            return memo[0] == "err"
        try:
            with open(self._path(uid, "pkl"), "rb") as f:
                return f.read(len(ERROR_MAGIC)) == ERROR_MAGIC
        except OSError:
            return False

    # ------------------------------------------------------------------ writing

    def write_result(
        self, uid: str, value: Any, *, via: str | None = None, replace: bool = True
    ) -> None:
        """Store a result atomically, replacing whatever entry ``uid`` had.

        Args:
            uid: Item uid.
            value: The result.
            via: A file of ours to rename into place (see ``write_atomic``).
            replace: False when the caller knows that no entry file exists (skips a delete).

        """
        self.make_folders()
        if _is_plain_array(value):
            chunks = _npy_chunks(value)
            write_atomic(self._path(uid, "npy"), chunks, fsync=self.fsync_item, via=via)
            if replace:
                self._drop_others(uid, "npy")
            self.forget(uid)
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
        self._write_pickle(uid, "pkl", payload, via, replace)

    def write_error(
        self, uid: str, error: CachedError, *, via: str | None = None, replace: bool = True
    ) -> None:
        """Store a cached error atomically, replacing whatever entry ``uid`` had."""
        self.make_folders()
        payload = pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL)
        self._write_pickle(uid, "err", payload, via, replace)

    def _write_pickle(
        self, uid: str, ext: str, payload: bytes, via: str | None, replace: bool
    ) -> None:
        magic = ERROR_MAGIC if ext == "err" else PICKLE_MAGIC
        chunks = (magic, _digest(payload), payload)
        write_atomic(self._path(uid, "pkl"), chunks, fsync=self.fsync_item, via=via)
        if replace:
            self._drop_others(uid, "pkl")
        self._recent = None
        if self.keep_in_ram or len(payload) <= MEMO_BYTES:
            self._memo[uid] = (ext, payload)
        else:
            self._memo.pop(uid, None)

    def _drop_others(self, uid: str, keep: str) -> None:
        # A new entry replaces an older one of another kind (e.g. a success after an error).
        for ext in ("pkl", "npy"):
            if ext != keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(uid, ext))

    def sync(self) -> None:
        """Flush the entries written so far to stable storage (``fsync="batch"``)."""
        if self.fsync_batch and self.paths.cache_folder.exists():
            sync_filesystem(self.paths.cache_folder)

    def clear(self, uid: str) -> None:
        """Delete every entry and job reference of ``uid``."""
        self.forget(uid)
        self._drop_others(uid, "")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self.paths.job_folder}{os.sep}{uid}.json")

    def forget(self, uid: str) -> None:
        """Drop the in-memory copy of ``uid`` so that the next read goes to disk."""
        self._memo.pop(uid, None)
        self._recent = None
