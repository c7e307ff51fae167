r"""Numpy array results: inline in a frame when small, in their own ``.npy`` file when large.

A small array (up to ``INLINE_ARRAY_BYTES``) is a frame's value: a standard ``.npy`` header
and the data, covered by the frame's checksum, and read back as a read-only view of the
segment's memory map. A larger one keeps a file of its own under ``arrays/``, so that it
still memory-maps: a standard ``.npy`` file (any numpy opens it) followed by a trailer::

    magic "ASSAYN2\n" | data length u64 | xxh3-128 of: the item uid, the header, the data,
    a 512 KiB sample of the data

The uid digest ties the file to its item, as a frame's checksum does. Arrays up to
``FULL_VERIFY_BYTES`` are checksummed in full on every read; larger ones are checked by size,
header and sample (a full pass would cost several times the memory-mapped read itself).
Files written by an older assay carry the ``ASSAYN1`` trailer, without the uid.
"""

from __future__ import annotations

import io
import os
import stat
import struct
from typing import Any

import numpy as np
import xxhash

from ._frames import CorruptEntryError

#: Arrays up to this size are stored inline in their frame; larger ones in a ``.npy`` file.
INLINE_ARRAY_BYTES = 64 * 2**10
FULL_VERIFY_BYTES = 16 * 2**20
_SAMPLE = 256 * 2**10
NPY_MAGIC = b"ASSAYN2\n"
LEGACY_NPY_MAGIC = b"ASSAYN1\n"
_TRAILER = struct.Struct("<8sQ16s16s16s16s")
_LEGACY_TRAILER = struct.Struct("<8sQ16s16s16s")
_NO_UID = bytes(16)


def is_plain_array(value: Any) -> bool:
    """Return whether ``value`` is stored as an array entry (a numpy array without objects)."""
    return type(value) is np.ndarray and not value.dtype.hasobject


def _digest(data: bytes | memoryview) -> bytes:
    return xxhash.xxh3_128_digest(data)


def _sample(data: memoryview) -> bytes:
    return bytes(data[:_SAMPLE]) + bytes(data[-_SAMPLE:])


def _header_and_body(array: np.ndarray[Any, Any]) -> tuple[bytes, memoryview]:
    # ascontiguousarray returns at least one dimension: reshape, or a 0-d array comes back (1,).
    data = np.ascontiguousarray(array).reshape(array.shape)
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(header, np.lib.format.header_data_from_array_1_0(data))
    body = data.reshape(-1).view(np.uint8).data if data.size else memoryview(b"")
    return header.getvalue(), body


def array_nbytes(array: np.ndarray[Any, Any]) -> int:
    """Return the bytes an array's data takes (decides inline or file)."""
    return int(array.nbytes)


def inline_value(array: np.ndarray[Any, Any]) -> bytes:
    """Return the frame value of a small array: its ``.npy`` header and data."""
    head, body = _header_and_body(array)
    return head + bytes(body)


def read_inline(value: memoryview, where: str) -> np.ndarray[Any, Any]:
    """Return the read-only array held in a (verified) frame value."""
    shape, fortran, dtype, offset = _parse_header(value, where)
    data = value[offset:]
    if len(data) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise CorruptEntryError(f"{where}: array data length does not match its header")
    flat: np.ndarray[Any, Any] = np.frombuffer(data, dtype=dtype)
    array = flat.reshape(shape, order="F" if fortran else "C")
    array.flags.writeable = False
    return array


def file_chunks(array: np.ndarray[Any, Any], uid: str) -> list[bytes]:
    """Return the chunks of a large array's ``.npy`` file, its trailer naming ``uid``."""
    head, body = _header_and_body(array)
    trailer = _TRAILER.pack(
        NPY_MAGIC,
        body.nbytes,
        _digest(uid.encode()),
        _digest(head),
        # Only arrays that are verified in full on read pay for a full digest on write.
        _digest(body) if body.nbytes <= FULL_VERIFY_BYTES else bytes(16),
        _digest(_sample(body)),
    )
    return [head, body, trailer]  # type: ignore[list-item]


def _parse_header(source: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    stream = io.BytesIO(source[:65536]) if not hasattr(source, "read") else source
    try:
        version = np.lib.format.read_magic(stream)
        reader = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if reader is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = reader(stream)
    except Exception as error:  # numpy's parser raises ValueError, SyntaxError, TokenError...
        raise CorruptEntryError(f"{where}: unreadable .npy header ({error})") from None
    return shape, fortran, dtype, stream.tell()


def open_regular(path: str) -> int:
    """Open ``path`` for reading, refusing anything but a regular file without reading it.

    ``O_NOFOLLOW`` refuses a symbolic link and ``O_NONBLOCK`` keeps a FIFO from blocking the
    open; the descriptor is then checked to be a regular file before a byte is read.

    Raises:
        FileNotFoundError: Nothing at ``path``.
        CorruptEntryError: A link, FIFO, device, directory or an unreadable file.

    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as error:  # ELOOP for a link, EACCES, EIO...
        raise CorruptEntryError(f"{path}: unreadable ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CorruptEntryError(f"{path}: not a regular file, refused without reading it")
    return fd


def read_file(path: str, uid: str | None) -> np.ndarray[Any, Any]:
    """Return the array of a ``.npy`` entry file, memory-mapped and read-only, verified.

    Args:
        path: The file.
        uid: The item it must belong to; None for a file of the older layout (its trailer
            names no item: the file's own name did).

    Raises:
        CorruptEntryError: The file fails verification or belongs to another item.

    """
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        return _read_open_file(f, path, uid)


def _read_open_file(f: Any, path: str, uid: str | None) -> np.ndarray[Any, Any]:
    size = os.fstat(f.fileno()).st_size
    shape, fortran, dtype, offset = _parse_header(f, path)
    f.seek(0)
    head = f.read(offset)
    trailer = _LEGACY_TRAILER if uid is None else _TRAILER
    f.seek(max(size - trailer.size, 0))
    fields = trailer.unpack(f.read(trailer.size).rjust(trailer.size, b"\0"))
    if uid is None:
        magic, length, head_sum, data_sum, sample_sum = fields
        expected_magic = LEGACY_NPY_MAGIC
    else:
        magic, length, uid_sum, head_sum, data_sum, sample_sum = fields
        expected_magic = NPY_MAGIC
        if magic == NPY_MAGIC and uid_sum != _digest(uid.encode()):
            raise CorruptEntryError(f"{path}: the array belongs to another item")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if magic != expected_magic or length != expected or size != offset + length + trailer.size:
        raise CorruptEntryError(f"{path}: truncated or not written by assay (size {size})")
    if _digest(head) != head_sum:
        raise CorruptEntryError(f"{path}: header checksum mismatch")
    if length == 0:
        array = np.empty(shape, dtype=dtype)
        array.flags.writeable = False
        return array
    # Mapped through the descriptor that was checked, not by name again.
    mapped = np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape,
                       order="F" if fortran else "C")  # fmt: skip
    body = np.asarray(mapped).reshape(-1).view(np.uint8).data
    if length <= FULL_VERIFY_BYTES:
        if _digest(body) != data_sum:
            raise CorruptEntryError(f"{path}: data checksum mismatch")
    elif _digest(_sample(body)) != sample_sum:
        raise CorruptEntryError(f"{path}: data checksum mismatch (sampled)")
    return mapped
