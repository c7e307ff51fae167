"""Artifact files: each written atomically and hashed as it is written; what killed writers left.

An artifact is serialised once, straight into a temporary file beside its target and into
its SHA-256 digest, then renamed into place: a reader never sees half an artifact. A writer
killed before the rename leaves its temporary file, removed later once it is stale.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# Files are read in chunks of this size, so a checkpoint is never held in memory whole.
_CHUNK = 1 << 20


class Sink:
    """A write-only file object that hashes and counts what passes through it.

    With a ``handle``, it also forwards every write there: an artifact is serialised once,
    straight into its file and its digest, rather than into an in-memory copy for each.

    Examples:
        >>> sink = Sink()
        >>> sink.write(b"abc"), sink.size, sink.sha256[:12]
        (3, 3, 'ba7816bf8f01')

    """

    def __init__(self, handle: BinaryIO | None = None) -> None:
        self._hash = hashlib.sha256()
        self._handle = handle
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")  # numpy and pickle hand over bytes or buffers
        self._hash.update(view)
        if self._handle is not None:
            self._handle.write(view)
        self.size += len(view)
        return len(view)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def serialise(kind: str, data: Any, sink: Sink) -> None:
    """Write the bytes an artifact is stored as, by kind, into ``sink``."""
    if kind == "bytes":
        sink.write(data)
    elif kind == "text":
        sink.write(str(data).encode("utf-8"))
    elif kind == "path":
        with open(data, "rb") as source:
            while chunk := source.read(_CHUNK):
                sink.write(chunk)
    elif kind == "array":
        np.save(sink, data, allow_pickle=False)
    else:
        pickle.dump(data, sink, protocol=pickle.HIGHEST_PROTOCOL)


#: A writer's temporary file older than this (by its last write) was left by a killed writer:
#: it is removed when the artifact folder is next written or its run runs again.
STALE_TEMPORARY_SECONDS = 3600.0
_TEMPORARY = re.compile(r"\..+\.[0-9]+\.tmp", re.DOTALL)  # what write_artifact names its files


def remove_stale_temporaries(folder: Path, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
    """Remove the temporary files killed writers left in ``folder``; return how many.

    Only files named like ``write_artifact``'s temporary files (``.<name>.<pid>.tmp``, a name no
    artifact may take) whose last write is older than ``older_than`` seconds are removed: a
    writer still at work keeps its file. Best effort: a file that cannot be removed stays.
    """
    limit = time.time() - older_than
    removed = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not (entry.name.endswith(".tmp") and _TEMPORARY.fullmatch(entry.name)):
                    continue
                try:
                    if (
                        entry.is_file(follow_symlinks=False)
                        and entry.stat(follow_symlinks=False).st_mtime < limit
                    ):
                        os.unlink(entry.path)
                        removed += 1
                except OSError:
                    continue  # removed meanwhile by another process, or not ours to remove
    except OSError:
        pass  # no folder yet (nothing left over), or unreadable: writing will say so
    return removed


def write_artifact(kind: str, data: Any, target: Path) -> Sink:
    """Write an artifact to ``target`` atomically (temporary name, flush, rename); hash it."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            sink = Sink(handle)
            serialise(kind, data, sink)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)  # no half-written file left beside the artifacts
        # A failed write or flush names no file, a failed open the temporary one: name the
        # artifact (a full disk must say where).
        unnamed = (None, str(temporary))
        if isinstance(error, OSError) and error.strerror and error.filename in unnamed:
            error.filename = str(target)
        raise
    return sink
