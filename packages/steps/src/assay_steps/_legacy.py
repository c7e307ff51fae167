r"""Entries of the older layout: one file per item in ``cache/``, read but never written.

Before segments, each entry was a file of its own in the code version's ``cache/`` folder:

- ``<uid>.pkl``: ``MAGIC + xxh3-128(payload) + payload`` (``ASSAYP1\n`` for a pickled result,
  ``ASSAYE1\n`` for a pickled cached error);
- ``<uid>.npy``: a standard ``.npy`` file with the ``ASSAYN1`` trailer (see ``_arrays.py``).

They are read, verified as they always were, when an item has no frame; ``assay cache
migrate`` packs them into a segment. New entries always go to segments.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import xxhash

from ._arrays import open_regular, read_file
from ._frames import ARRAY, ERROR, RESULT, CorruptEntryError

PICKLE_MAGIC = b"ASSAYP1\n"
ERROR_MAGIC = b"ASSAYE1\n"
LEGACY_FOLDER = "cache"
_HEAD = len(PICKLE_MAGIC) + 16


def read_legacy(cache_folder: str, uid: str) -> tuple[int, Any] | None:
    """Return ``(kind, payload or array)`` of an older entry of ``uid``; None if it has none.

    Raises:
        CorruptEntryError: The entry exists but fails verification.

    """
    base = os.path.join(cache_folder, uid)
    try:
        fd = open_regular(f"{base}.pkl")
    except FileNotFoundError:
        try:
            return ARRAY, read_file(f"{base}.npy", None)
        except FileNotFoundError:
            return None
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    magic = raw[: len(PICKLE_MAGIC)]
    if magic not in (PICKLE_MAGIC, ERROR_MAGIC) or len(raw) < _HEAD:
        raise CorruptEntryError(f"{base}.pkl: truncated or not written by assay")
    payload = raw[_HEAD:]
    if xxhash.xxh3_128_digest(payload) != raw[len(PICKLE_MAGIC) : _HEAD]:
        raise CorruptEntryError(f"{base}.pkl: checksum mismatch")
    return (ERROR if magic == ERROR_MAGIC else RESULT), payload


def legacy_uids(cache_folder: str) -> list[str]:
    """Return the uids that have an entry file of the older layout (sorted)."""
    try:
        names = os.listdir(cache_folder)
    except FileNotFoundError:
        return []
    return sorted(
        {
            name.rsplit(".", 1)[0]
            for name in names
            if not name.startswith(".") and name.endswith((".pkl", ".npy"))
        }
    )


def remove_legacy(cache_folder: str, uid: str) -> None:
    """Delete the older entry files of ``uid``, if any."""
    for ext in (".pkl", ".npy"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(cache_folder, uid + ext))
