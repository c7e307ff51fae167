"""``watch``: a callback that the submitit backends call while they wait for their jobs."""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator, Sequence

from ._failures import JobFailure

Callback = Callable[[Sequence[JobFailure]], object]

#: The callback of the innermost ``watch`` of this thread (or asyncio task), if any.
_CALLBACK: contextvars.ContextVar[Callback | None] = contextvars.ContextVar(
    "assay_backends_watch", default=None
)
#: Seconds between two calls of the callback while no job ends.
WATCH_SECONDS = 0.5


@contextlib.contextmanager
def watch(callback: Callback) -> Iterator[None]:
    """Call ``callback`` while the submitit backends wait for their jobs, inside this block.

    The wait of ``LocalProcess``, ``Slurm``, ``Auto`` and ``SubmititDebug`` calls
    ``callback(new_failures)`` about every 0.5 s, and at once after a job ended; ``new_failures``
    holds the [`JobFailure`][assay_backends.JobFailure] of each job that failed since the last call
    (most often none). If the callback raises, anything (``KeyboardInterrupt`` included), the
    backend cancels every job of the submission that has not ended, waits until none of them is
    still active, and lets the exception propagate. That is how a caller stops a sweep early (after
    too many failures, say).

    The callback is per thread (and per asyncio task): a ``watch`` in one thread does not
    see the jobs another thread submits. Nested, the innermost callback applies.

    Args:
        callback: Called with the failures new since its last call.

    Examples:
        >>> seen = []
        >>> with watch(seen.extend):
        ...     pass  # run steps on a submitit backend here
        >>> seen
        []

    """
    if not callable(callback):
        raise TypeError(f"callback={callback!r}: expected a callable taking a list of failures")
    token = _CALLBACK.set(callback)
    try:
        yield
    finally:
        _CALLBACK.reset(token)


class Watcher:
    """The wait loop's side of ``watch``: when to call the callback, with what.

    See [`watch`][assay_backends.watch].
    """

    def __init__(self) -> None:
        self.callback = _CALLBACK.get()
        self._pending: list[JobFailure] = []
        self._last = time.monotonic()

    @property
    def active(self) -> bool:
        """Whether a callback is set (the loop then polls at least every 0.5 s)."""
        return self.callback is not None

    def add(self, failure: JobFailure) -> None:
        """Remember a failure for the next call."""
        self._pending.append(failure)

    def tick(self, ended: bool) -> None:
        """Call the callback if a job ``ended`` or 0.5 s passed; its exception propagates."""
        if self.callback is None:
            return
        if not ended and time.monotonic() - self._last < WATCH_SECONDS:
            return
        failures, self._pending = self._pending, []
        self._last = time.monotonic()
        self.callback(failures)
