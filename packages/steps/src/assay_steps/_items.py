"""The iterator of results that ``Step.run_many`` returns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class StepItems:
    """Results of ``run_many``: an iterator yielding one result per input, in input order.

    Missing items are computed (and cached) before ``run_many`` returns; iterating reads
    the results back one at a time, so a large run does not hold every result in memory.
    A cached error is re-raised when iteration reaches its item.

    Example:
        >>> items = StepItems(iter([1, 2]), 2)
        >>> len(items), list(items)
        (2, [1, 2])

    """

    def __init__(self, results: Iterator[Any], length: int) -> None:
        self._results = results
        self._length = length

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._results)

    def __len__(self) -> int:
        return self._length
