"""Infrastructure errors of an experiment folder: its storage failed, not its runs."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path


class InfrastructureError(OSError):
    """The storage of an experiment folder failed: a full disk, a quota, an I/O error.

    Raised by ``Experiment.run`` when writing a run's outputs (its artifacts, its cache entry)
    or the results index fails with ``ENOSPC``, ``EDQUOT``, ``EIO`` or ``EROFS``. It is no
    run's outcome: the runs that did not finish stay ``pending`` and a plain ``run()`` computes
    them once the storage is fixed. ``errno`` and ``filename`` are the original error's; the
    message names the folder, the file and the system's own words, and says what to do.

    Examples:
        >>> import errno
        >>> error = InfrastructureError(errno.ENOSPC, "runs/pi: No space left on device")
        >>> isinstance(error, OSError), error.errno == errno.ENOSPC
        (True, True)
        >>> str(error)
        'runs/pi: No space left on device'

    """

    def __str__(self) -> str:
        return str(self.strerror)


#: SQLite's primary result codes that say the storage failed, with the errno they stand for.
_SQLITE_STORAGE = {13: errno.ENOSPC, 10: errno.EIO}  # SQLITE_FULL, SQLITE_IOERR
_SQLITE_MESSAGES = {"database or disk is full": errno.ENOSPC, "disk I/O error": errno.EIO}


def index_storage_error(error: sqlite3.Error, index: Path) -> InfrastructureError | None:
    """Return the error naming ``index`` and its folder when SQLite says the storage failed.

    SQLite says only "database or disk is full" or "disk I/O error", naming no file.
    """
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+
    found = _SQLITE_STORAGE.get(code & 0xFF) if isinstance(code, int) else None
    if found is None:
        found = next((e for text, e in _SQLITE_MESSAGES.items() if text in str(error)), None)
    if found is None:
        return None
    return InfrastructureError(
        found,
        f"results index {str(index)!r} of experiment folder {str(index.parent)!r} could not "
        f"be written: {error} ({os.strerror(found)})",
        str(index),
    )
