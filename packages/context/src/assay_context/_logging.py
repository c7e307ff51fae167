"""LoggingContext: a context proxy that logs and remembers every key read."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._context import FrozenContext


class LoggingContext(FrozenContext):
    """A proxy of a `FrozenContext` that logs each key read and remembers it.

    Every read (``ctx[key]``, ``get`` of a set key, ``items()``, ``values()``) emits a DEBUG
    line and enters the key in `reads`, so a run can report which context values it used;
    ``as_dict()``, ``in``, ``len`` and iteration over keys read no value and are not recorded.
    Writes, metrics and artifacts go to the wrapped context.

    Args:
        ctx: The context to wrap; keys added through the proxy are added to it.
        logger: Logger for the DEBUG lines; defaults to the wrapped context's logger.

    Examples:
        >>> run = FrozenContext({"lr": 0.1, "epochs": 3})
        >>> ctx = LoggingContext(run)
        >>> ctx["lr"]
        0.1
        >>> sorted(ctx.reads)
        ['lr']

    """

    __slots__ = ("_inner", "_reads")

    _inner: FrozenContext
    _reads: dict[str, Any]

    def __init__(self, ctx: FrozenContext, logger: logging.Logger | None = None) -> None:
        if not isinstance(ctx, FrozenContext):
            raise TypeError(
                f"LoggingContext wraps a FrozenContext; got {ctx!r} of type "
                f"{type(ctx).__qualname__}"
            )
        self._attach(ctx, logger if logger is not None else ctx.logger, {})

    def _attach(self, ctx: FrozenContext, logger: logging.Logger, reads: dict[str, Any]) -> None:
        self._inner = ctx
        # Sharing the wrapped context's storage makes every write land there, and keeps the
        # read path as short as the context's own.
        self._data = ctx._data
        self._copies = False  # unused: reads go through the wrapped context
        self.metrics = ctx.metrics
        self.artifacts = ctx.artifacts
        self.logger = logger
        self._reads = reads

    @property
    def reads(self) -> Mapping[str, Any]:
        """Read-only view: each key read so far → the value read, in first-read order.

        ``set(ctx.reads)`` is the set of keys the run used.
        """
        return MappingProxyType(self._reads)

    @property
    def inner(self) -> FrozenContext:
        """The wrapped context."""
        return self._inner

    def _log_read(self, key: str, value: Any) -> None:
        self._reads.setdefault(key, value)
        self.logger.debug("Read %s -> %r", key, value)

    # Reads and writes go through the wrapped context, which alone knows how its values are
    # stored; the proxy only shares its dict for the cheap ``in``, ``len`` and iteration.

    def __getitem__(self, key: str) -> Any:
        value = self._inner[key]
        self._log_read(key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key`` (logging the read), or ``default`` if it is not set."""
        if key not in self._data:
            return default
        return self[key]

    def as_dict(self) -> Mapping[str, Any]:
        """Return a read-only snapshot of every key (see `FrozenContext.as_dict`).

        As in crystallize, the snapshot is not a read: it neither enters keys in `reads` nor
        logs, so saving or printing the whole context does not mark every value as used.

        Examples:
            >>> ctx = LoggingContext(FrozenContext({"lr": 0.1, "epochs": 3}))
            >>> ctx.as_dict()
            FrozenDict({'lr': 0.1, 'epochs': 3})
            >>> dict(ctx.reads)
            {}

        """
        return self._inner.as_dict()

    def add(self, key: str, value: Any) -> None:
        """Add a new key to the wrapped context (see `FrozenContext.add`)."""
        self._inner.add(key, value)

    def merge(self, other: Mapping[str, Any]) -> None:
        """Merge into the wrapped context (see `FrozenContext.merge`)."""
        self._inner.merge(other)

    def child(self) -> LoggingContext:
        """Return a logging view for a step; its reads are entered in this proxy's ``reads``."""
        proxy: LoggingContext = object.__new__(LoggingContext)
        proxy._attach(self._inner.child(), self.logger, self._reads)
        return proxy

    def __getstate__(self) -> dict[str, Any]:
        return {"inner": self._inner, "logger": self.logger, "reads": self._reads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._attach(state["inner"], state["logger"], state["reads"])

    def __repr__(self) -> str:
        return f"LoggingContext({self._inner!r}, reads={list(self._reads)!r})"
