"""Recording which parameters a block of code read, and with what value."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any

from ._state import LOCK, RECORDERS, RECORDING


class Record(Mapping[str, Any]):
    """The parameters read inside a ``param_scope.record()`` block: key -> value used.

    The value is the one the code received (after conversion, or the default when no scope set
    the key). ``defaulted`` tells which keys fell back to their default. Reads made by
    ``auto_param`` functions count too, so a record is the "operative configuration" of a run.

    Examples:
        >>> from assay_scope import param_scope
        >>> with param_scope(lr="0.1"), param_scope.record() as used:
        ...     lr = param_scope.lr(0.01)
        ...     epochs = param_scope.epochs | 5
        >>> dict(used), sorted(used.defaulted)
        ({'lr': 0.1, 'epochs': 5}, ['epochs'])

    """

    __slots__ = ("_reads",)

    def __init__(self) -> None:
        self._reads: dict[str, tuple[Any, bool]] = {}

    def __getitem__(self, key: str) -> Any:
        return self._reads[key][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._reads)

    def __len__(self) -> int:
        return len(self._reads)

    @property
    def defaulted(self) -> frozenset[str]:
        """The keys that no scope set, so the default given at the read was used."""
        return frozenset(key for key, (_, defaulted) in self._reads.items() if defaulted)

    def __repr__(self) -> str:
        return f"Record({dict(self)!r})"


class Recording:
    """The context manager returned by ``param_scope.record()``; yields a ``Record``.

    Recording is per thread and per asyncio task, like scopes; nested recordings each see
    every read of their block.
    """

    __slots__ = ("_record", "_token")

    def __init__(self) -> None:
        self._record = Record()
        self._token: Token[tuple[dict[str, tuple[Any, bool]], ...]] | None = None

    def __enter__(self) -> Record:
        self._token = RECORDERS.set((*RECORDERS.get(), self._record._reads))
        with LOCK:
            RECORDING[0] += 1
        return self._record

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is None:
            raise RuntimeError("param_scope.record() block exited without being entered")
        RECORDERS.reset(self._token)
        self._token = None
        with LOCK:
            RECORDING[0] -= 1
