"""Checkpoints of runs that opted in: saved when the scheduler warns, read back on the next attempt.

A run registers a hook with [`Runtime.on_timeout`][assay_ops.Runtime.on_timeout]. When the batch
system warns that the job's time limit (or a preemption) is near, the backend running the job calls
[`checkpoint_now`][assay_ops.checkpoint_now], which calls every registered hook and writes what it
returns to the run's ``checkpoint.pkl``; the backend then requeues the job, and the operation,
started again, finds that state with [`Runtime.checkpoint`][assay_ops.Runtime.checkpoint].
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Name of the file holding a run's checkpoint, in its run directory.
CHECKPOINT_FILE = "checkpoint.pkl"

#: The hooks of the runs of this process that opted in, by the id of their Runtime: where to
#: write, and what to call. A plain dict, not guarded by a lock: the signal handler that reads
#: it runs in the main thread between two bytecodes, where a lock held by the interrupted code
#: would never be released.
_HOOKS: dict[int, tuple[Path, Callable[[], Any]]] = {}


def register(key: int, path: Path, save: Callable[[], Any]) -> None:
    """Register (or replace) the hook of the run ``key``: ``save()`` is written to ``path``."""
    _HOOKS[key] = (path, save)


def unregister(key: int) -> None:
    """Forget the hook of the run ``key`` (its run ended)."""
    _HOOKS.pop(key, None)


def write_checkpoint(path: Path, state: Any) -> None:
    """Pickle ``state`` to ``path`` atomically: a reader sees the old file or the new one.

    Raises:
        pickle.PicklingError: ``state`` cannot be pickled (the old file is kept).

    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(state, stream, protocol=pickle.HIGHEST_PROTOCOL)
            stream.flush()
            # The job is killed moments after: the bytes must be on disk, not in a cache.
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_checkpoint(path: Path) -> Any | None:
    """Return the state pickled in ``path``, or None when there is no such file.

    Raises:
        RuntimeError: The file exists but cannot be unpickled; the message names it.

    """
    try:
        with path.open("rb") as stream:
            return pickle.load(stream)
    except FileNotFoundError:
        return None
    except Exception as error:
        raise RuntimeError(
            f"checkpoint file {path} cannot be read ({type(error).__name__}: {error}); "
            "delete it to start the run from the beginning"
        ) from error


def checkpoint_now() -> bool:
    """Save the checkpoint of every run of this process that registered a hook.

    Called by a backend when the scheduler warns that the job's time limit (or a preemption) is
    near, typically from a signal handler: each hook registered with
    [`Runtime.on_timeout`][assay_ops.Runtime.on_timeout] is called and what it returns is written
    atomically to ``<run_dir>/checkpoint.pkl``. A hook that raises, or returns something that cannot
    be pickled, is reported on stderr and counts as not saved.

    Returns:
        True when at least one checkpoint was written (the job may then be requeued), False
        when no run registered a hook or none could be saved.

    Examples:
        >>> checkpoint_now()  # no run registered a hook
        False

    """
    saved = False
    for path, save in list(_HOOKS.values()):
        try:
            write_checkpoint(path, save())
        except Exception as error:
            print(
                f"assay: the checkpoint hook of the run writing {path} failed "
                f"({type(error).__name__}: {error}); nothing saved for it",
                file=sys.stderr,
                flush=True,
            )
            continue
        saved = True
    return saved
