"""A composite step of one's own (not a Chain) streams through a chain as a Chain does.

A chain asks each of its steps how it streams its items (``_stream_pairs``) and whether its
results are cached (``_caches_results``); a composite step overrides both, as Chain does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assay_steps import BatchProtocolError, Cached, Chain, Step
from assay_steps._stream import Pair, StreamContext
from steps_testkit import CALLS, Add, Mult


class Twice(Step):
    """Its input goes through ``inner`` twice; in a chain, it streams its items itself."""

    inner: Step

    def _run(self, value: Any) -> Any:
        return self.inner.run(self.inner.run(value))

    def _caches_results(self) -> bool:
        return self.infra is not None or self.inner._caches_results()

    def _stream_pairs(self, pairs: Iterator[Pair], context: StreamContext) -> Iterator[Pair]:
        for index, value in pairs:
            CALLS.append(("Twice", value))
            yield index, self._run(value)


class Short(Step):
    """A batch that drops its last result (it breaks the batch protocol)."""

    def _run_batch(self, values: Iterable[float]) -> Iterator[float]:
        yield from list(values)[:-1]


def test_a_composite_step_streams_its_own_items_lazily() -> None:
    chain = Chain(steps=[Mult(coeff=2), Twice(inner=Add(x=1)), Add(x=100)])
    items = chain.run_many(itertools.count(1))
    assert next(items) == 104.0
    assert CALLS == [("Mult", 1), ("Twice", 2.0), ("Add", 2.0), ("Add", 3.0), ("Add", 4.0)]
    assert next(items) == 106.0  # the next item only when asked for


def test_a_batch_before_a_composite_step_that_caches_is_held(folder: Path) -> None:
    # Its sub-step caches what it gets: a batch with a result too few must reach it with
    # nothing, or a result would be cached under another item.
    inner = Add(infra=Cached(folder=folder))
    items = Chain(steps=[Short(), Twice(inner=inner)]).run_many(iter([1.0, 2.0]))
    with pytest.raises(BatchProtocolError, match="1 results for 2 inputs"):
        list(items)
    assert not inner.lookup(1.0).cached()
    assert "Twice" not in [name for name, _ in CALLS]


def test_a_nested_chain_still_streams_through_its_steps() -> None:
    chain = Chain(steps=[Mult(coeff=10), Chain(steps=[Add(x=1), Mult(coeff=10)])])
    items = chain.run_many(itertools.count(1))
    assert next(items) == 110.0
    assert CALLS == [("Mult", 1), ("Add", 10), ("Mult", 11.0)]
