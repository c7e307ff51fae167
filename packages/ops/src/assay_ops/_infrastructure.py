"""Infrastructure errors: the machine's storage failed, not the code that ran."""

from __future__ import annotations

import errno
from typing import TypeGuard

#: The errno values of an ``OSError`` that says the storage failed: a full disk, an exceeded
#: quota, an I/O error, a read-only file system. Rerunning the same code once the storage is
#: fixed can succeed, so such an error is never a run's (or a cached item's) own outcome.
INFRASTRUCTURE_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),  # not on every platform
        errno.EIO,
        errno.EROFS,
    )
    if code is not None
)


def is_infrastructure_error(error: BaseException) -> TypeGuard[OSError]:
    """Whether ``error`` says the storage failed rather than the code that raised it.

    True for an ``OSError`` whose ``errno`` is ``ENOSPC`` (no space left on the device),
    ``EDQUOT`` (disk quota exceeded), ``EIO`` (input/output error) or ``EROFS`` (read-only
    file system). ``OperationWrapper.run`` lets such an error propagate instead of recording a
    ``failed`` run, and a step's cache does not store it as the item's error.

    Examples:
        >>> import errno
        >>> is_infrastructure_error(OSError(errno.ENOSPC, "No space left on device"))
        True
        >>> is_infrastructure_error(FileNotFoundError(errno.ENOENT, "No such file"))
        False

    """
    return isinstance(error, OSError) and error.errno in INFRASTRUCTURE_ERRNOS
