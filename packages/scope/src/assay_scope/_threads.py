"""Running threads and pool tasks inside the scope that started them."""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


class ScopedThread(threading.Thread):
    """A ``threading.Thread`` that runs inside the scopes current where it was created.

    A plain thread starts with an empty context, so it sees only the base published by
    ``param_scope.frozen()``. This subclass copies the creating context, like asyncio tasks do.

    Examples:
        >>> from assay_scope import param_scope
        >>> seen = []
        >>> with param_scope(lr=0.5):
        ...     thread = ScopedThread(target=lambda: seen.append(param_scope.lr(0.1)))
        >>> thread.start(); thread.join()
        >>> seen
        [0.5]

    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._assay_context = contextvars.copy_context()

    def run(self) -> None:
        """Run the thread's target inside the copied context."""
        self._assay_context.run(super().run)


def bind_scope(func: Callable[..., R]) -> Callable[..., R]:
    """Return ``func`` bound to the scopes current now, for thread pools and callbacks.

    Each call runs in its own copy of the captured context, so concurrent calls are safe and
    scopes they enter do not leak into each other.

    Examples:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> from assay_scope import param_scope
        >>> with param_scope(width=64):
        ...     read = bind_scope(lambda: param_scope.width(8))
        >>> with ThreadPoolExecutor(2) as pool:
        ...     list(pool.map(lambda _: read(), range(3)))
        [64, 64, 64]

    """
    context = contextvars.copy_context()

    @functools.wraps(func)
    def bound(*args: Any, **kwargs: Any) -> R:
        return context.copy().run(func, *args, **kwargs)

    return bound
