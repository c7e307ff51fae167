"""A batch that breaks the one-result-per-input protocol caches nothing.

A ``_run_batch`` that yields one result too many or too few pairs results with the wrong
items: which input a result belongs to is unknown. After its :class:`BatchProtocolError`
no item of that batch has an entry (the lookup status of every item is None), whichever
backend ran it, and a fixed step computes them all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import cloudpickle  # type: ignore[import-untyped]
import pytest
from assay_steps import BatchProtocolError, Step
from audit import count
from layout import claim_files, temporaries

# The step travels to pool workers by value, as a step defined in a notebook would.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ITEMS = list(range(24))  # three items per shard in a pool of two workers


class OffByOne(Step):
    """Tens of its inputs; ``fault`` makes its batches break the protocol.

    ``"stray-first"`` yields a stray result before the real ones (one too many, every result
    shifted onto the next item), ``"drop-first"`` drops the first result (one too few, every
    result shifted onto the previous item), ``"lazy-skip"`` does the same while consuming its
    inputs one at a time, ``"extra-at-end"`` yields one more result after the right ones.
    ``fault`` is left out of the cache uid: the fixed step (``fault=""``) reads the same cache.
    """

    fault: str = ""

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["fault"]

    def _run_batch(self, values: Iterable[Any]) -> Iterator[Any]:
        if self.fault == "lazy-skip":
            for position, value in enumerate(values):
                if position:
                    yield value * 10
            return
        results = [value * 10 for value in values]
        if self.fault == "stray-first":
            results.insert(0, -1)
        elif self.fault == "drop-first":
            results.pop(0)
        elif self.fault == "extra-at-end":
            results.append(-1)
        yield from results


def infra(backend: str, folder: Path) -> dict[str, Any]:
    settings: dict[str, Any] = {"backend": backend, "folder": folder}
    if backend != "Cached":
        settings.update(max_jobs=2, progress=False)  # two workers: the items are sharded
    return settings


@pytest.mark.parametrize("fault", ["stray-first", "drop-first", "lazy-skip", "extra-at-end"])
@pytest.mark.parametrize("backend", ["Cached", "ThreadPool", "ProcessPool"])
def test_a_batch_with_one_result_too_many_or_too_few_caches_nothing(
    tmp_path: Path, backend: str, fault: str
) -> None:
    broken = OffByOne(fault=fault, infra=infra(backend, tmp_path))
    with pytest.raises(BatchProtocolError, match="one result per input"):
        list(broken.run_many(ITEMS))
    count("broken batches tried")

    fixed = OffByOne(infra=infra(backend, tmp_path))
    statuses = [fixed.lookup(i).status for i in ITEMS]
    count("entries cached from a broken batch", sum(s is not None for s in statuses))
    assert statuses == [None] * len(ITEMS)
    assert list(fixed.run_many(ITEMS)) == [i * 10 for i in ITEMS]
    assert [fixed.lookup(i).status for i in ITEMS] == ["success"] * len(ITEMS)
    # Nothing of the broken batch is left claimed or half-written beside the entries.
    assert [p.name for p in claim_files(tmp_path)] == []
    assert [p.name for p in temporaries(tmp_path)] == []


SEEN: list[str | None] = []


class Declared(Step):
    """Declares its batch a loop that yields one result per input: cached as they come."""

    _one_result_per_input: ClassVar[bool] = True

    def _run_batch(self, values: Iterable[Any]) -> Iterator[Any]:
        for value in values:
            if value:  # what the cache holds of the previous item, while the batch runs
                SEEN.append(self.lookup(value - 1).status)
            yield value * 10


class Redefined(Declared):
    """Redefines the batch without declaring it: its items stay claimed (running) till it ends."""

    def _run_batch(self, values: Iterable[Any]) -> Iterator[Any]:
        for value in values:
            if value:
                SEEN.append(self.lookup(value - 1).status)
            yield value * 10


@pytest.mark.parametrize(("kind", "seen"), [(Declared, "success"), (Redefined, "running")])
def test_only_a_declared_batch_is_cached_while_it_runs(
    tmp_path: Path, kind: type[Step], seen: str | None
) -> None:
    SEEN.clear()
    step = kind(infra={"backend": "Cached", "folder": tmp_path})
    assert list(step.run_many([0, 1, 2])) == [0, 10, 20]
    assert [seen, seen] == SEEN
