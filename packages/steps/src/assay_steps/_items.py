"""The iterable of results that ``Step.run_many`` returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class StepItems:
    """Results of ``run_many``: one result per input, in input order.

    Missing items are computed (and cached) before ``run_many`` returns; iterating reads
    the results back one at a time, so a large run does not hold every result in memory.
    Each new iteration reads them again, as exca's ``StepItems`` does (from the cache, or
    by computing them again for a step without one). ``next(items)`` steps through the
    first pass. A cached error is re-raised when iteration reaches its item. The results of
    a step without a cache over an iterator (not a list) are computed as they are read, in
    a single pass: ``len()`` is then unknown and raises a ``TypeError``.

    Examples:
        >>> items = StepItems(iter([1, 2]), 2, again=lambda: iter([1, 2]))
        >>> len(items), list(items), list(items)
        (2, [1, 2], [1, 2])

    """

    def __init__(
        self,
        results: Iterator[Any],
        length: int | None,
        again: Callable[[], Iterator[Any]] | None = None,
    ) -> None:
        self._results = results
        self._length = length
        # Without ``again``, a single pass: later iterations continue the first one.
        self._again = again
        self._started = False

    def __iter__(self) -> Iterator[Any]:
        if self._started and self._again is not None:
            return self._again()
        self._started = True
        return self._results

    def __next__(self) -> Any:
        self._started = True
        return next(self._results)

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError(
                "the length of these results is unknown: they are computed as they are read, "
                "from an iterator; pass a list to run_many to know it"
            )
        return self._length
