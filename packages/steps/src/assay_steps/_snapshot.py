r"""The saved catalog (``index``): a snapshot that spares a new process the scan of every segment.

Layout, little-endian::

    magic "ASX1" | u32 length of the segments list | the list: JSON [[name, bytes covered], ...]
    | u64 entry count | u64 length of the uids | the uids, joined by "\n"
    | one u64 packed location per entry | xxh3-128 of everything before

It is only an accelerator. It is written to a temporary file and renamed into place (any
process may write it; the last rename wins, and each snapshot is whole). It is ignored, and
the segments scanned instead, when it is missing, fails its checksum, or covers a segment that
is gone or shorter than it was; frames read through it are verified like any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import uuid
from array import array
from typing import BinaryIO

import xxhash

from ._arrays import open_regular
from ._frames import CorruptEntryError
from ._segments import create_exclusive

INDEX_NAME = "index"
_MAGIC = b"ASX1"
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def save_snapshot(path: str, names: list[str], covered: list[int], entries: dict[str, int]) -> None:
    """Write the catalog to ``path`` atomically (best effort: it is only an accelerator)."""
    listing = json.dumps([[n, c] for n, c in zip(names, covered, strict=True)]).encode()
    uids = "\n".join(entries).encode()
    locations = array("Q", entries.values())
    if locations.itemsize != 8:  # pragma: no cover - every platform assay runs on
        return
    parts = [
        _MAGIC,
        _U32.pack(len(listing)),
        listing,
        _U64.pack(len(entries)),
        _U64.pack(len(uids)),
        uids,
        locations.tobytes(),
    ]
    hasher = xxhash.xxh3_128()
    for part in parts:
        hasher.update(part)
    parts.append(hasher.digest())
    tmp = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        fd = create_exclusive(tmp)
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
        os.replace(tmp, path)
    except OSError:  # a full disk or a read-only folder: the segments remain the truth
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def load_snapshot(
    path: str, segments_folder: str
) -> tuple[list[str], list[int], dict[str, int]] | None:
    """Return ``(segment names, bytes covered, entries)`` from ``path``; None if unusable."""
    try:
        fd = open_regular(path)
    except (FileNotFoundError, CorruptEntryError):
        return None
    with os.fdopen(fd, "rb") as f:
        raw = _read_announced(f)
    if raw is None:
        return None
    try:
        return _parse(raw, segments_folder)
    except (ValueError, KeyError, struct.error, UnicodeDecodeError):
        return None


def _read_announced(f: BinaryIO) -> bytes | None:
    """Return the whole snapshot if the file is exactly as long as its header says; else None.

    The sizes are read first: a file of another kind (or of zeros, or huge) is refused
    without being read whole.
    """
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) < 8 or head[:4] != _MAGIC:
        return None
    (listing_len,) = _U32.unpack_from(head, 4)
    if 8 + listing_len + 16 > size:
        return None
    f.seek(8 + listing_len)
    counts = f.read(16)
    count, uids_len = _U64.unpack_from(counts, 0)[0], _U64.unpack_from(counts, 8)[0]
    if 8 + listing_len + 16 + uids_len + 8 * count + 16 != size:
        return None
    f.seek(0)
    return f.read(size)


def _parse(raw: bytes, segments_folder: str) -> tuple[list[str], list[int], dict[str, int]] | None:
    if raw[:4] != _MAGIC or len(raw) < 40 or xxhash.xxh3_128_digest(raw[:-16]) != raw[-16:]:
        return None
    (listing_len,) = _U32.unpack_from(raw, 4)
    pos = 8 + listing_len
    listing = json.loads(raw[8:pos])
    count, uids_len = _U64.unpack_from(raw, pos)[0], _U64.unpack_from(raw, pos + 8)[0]
    pos += 16
    uids = raw[pos : pos + uids_len].decode().split("\n") if count else []
    pos += uids_len
    locations = array("Q")
    locations.frombytes(raw[pos : pos + 8 * count])
    if len(uids) != count or len(locations) != count:
        return None
    names = [str(name) for name, _ in listing]
    covered = [int(length) for _, length in listing]
    for name, length in zip(names, covered, strict=True):
        try:
            if os.lstat(os.path.join(segments_folder, name)).st_size < length:
                return None  # shorter than it was: not the file this snapshot describes
        except FileNotFoundError:
            return None  # compacted away since
    return names, covered, dict(zip(uids, locations.tolist(), strict=True))
