"""A step run without a cache of its own: its results computed as they are read.

Without a cache, items stream through a chain: item 1 passes every step before item 2
starts, so the input may be a long or endless iterator (see ``_stream.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._engine import uid_function
from ._items import StepItems
from ._state import NOVALUE
from ._stream import WINDOW

if TYPE_CHECKING:
    from ._step import Step


def _check_inputs(step: Step, values: Iterable[Any]) -> Iterator[Any]:
    """Pass ``values`` on, refusing "no input" for a step that needs one."""
    generator = step._is_generator()
    for value in values:
        if value is NOVALUE and not generator:
            raise TypeError(f"{type(step).__name__}._run needs an input: call run(value)")
        yield value


def streamed(step: Step, values: Iterable[Any]) -> StepItems:
    """Run ``step`` (without a cache of its own) over ``values`` as its results are read.

    A collection (a list, a tuple) can be read again: each reading computes again, as in
    exca; its cached sub-steps take all of it at once. Any other iterable is taken as it is
    read, once (it may be endless), and its cached sub-steps take a window at a time.
    """
    if isinstance(values, Collection):
        for _ in _check_inputs(step, values):  # refused now, before any result is read
            pass
        return StepItems(
            _stream_results(step, values, None),
            len(values),
            again=lambda: _stream_results(step, values, None),
        )
    return StepItems(_stream_results(step, _check_inputs(step, values), WINDOW), None)


def _stream_results(step: Step, values: Iterable[Any], window: int | None) -> Iterator[Any]:
    """Yield ``step``'s results over ``values``; keep each input only while its item runs."""
    inputs: dict[int, Any] = {}
    uids: dict[int, str] = {}
    item_uid = uid_function(step)

    def uid_at(index: int) -> str:
        uid = uids.get(index)
        if uid is None:  # computed only when a cache asks: a run without one never hashes
            uid = uids[index] = item_uid(inputs[index])
        return uid

    def kept() -> Iterator[Any]:
        for index, value in enumerate(values):
            inputs[index] = value
            yield value

    results = step._compute_items((), uid_at, kept(), window=window, cached=False)
    for index, result in enumerate(results):
        inputs.pop(index, None)
        uids.pop(index, None)
        yield result
