"""Threads sharing a context: set-once holds, and no metric value is lost or mislabelled."""

from __future__ import annotations

import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from assay_context import ContextMutationError, FrozenContext, FrozenMetrics, LoggingContext

THREADS = 4


class SlowToCopy:
    """A value whose copy (on add) and pickling (as an artifact) take a while, like a model."""

    def __init__(self, tag: int) -> None:
        self.tag = tag

    def __deepcopy__(self, memo: dict[int, Any]) -> SlowToCopy:
        time.sleep(0.02)
        return SlowToCopy(self.tag)

    def __reduce__(self) -> tuple[type[SlowToCopy], tuple[int]]:
        time.sleep(0.02)
        return (SlowToCopy, (self.tag,))


@pytest.fixture
def fast_switching() -> Iterator[None]:
    # Switch threads as often as possible, so that a race shows in a short test.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def race(work: Callable[[int], None]) -> tuple[list[int], list[int]]:
    """Run ``work(i)`` in THREADS threads at once; return who succeeded and who was refused."""
    start = threading.Barrier(THREADS)
    succeeded: list[int] = []
    refused: list[int] = []

    def run(index: int) -> None:
        start.wait()
        try:
            work(index)
        except ContextMutationError:
            refused.append(index)
        else:
            succeeded.append(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return succeeded, refused


@pytest.mark.parametrize("through_logging_context", [False, True])
def test_one_thread_sets_a_key_the_others_are_refused(through_logging_context: bool) -> None:
    ctx = FrozenContext({})
    target = LoggingContext(ctx) if through_logging_context else ctx
    succeeded, refused = race(lambda i: target.add("model", SlowToCopy(i)))
    assert len(succeeded) == 1
    assert sorted(succeeded + refused) == list(range(THREADS))
    # The value every reader sees is the one of the thread that was told it set it.
    assert ctx["model"].tag == succeeded[0]


def test_one_thread_adds_an_artifact_name_the_others_are_refused() -> None:
    ctx = FrozenContext({})
    succeeded, refused = race(lambda i: ctx.artifacts.add("model.pkl", SlowToCopy(i)))
    assert len(succeeded) == 1
    assert len(refused) == THREADS - 1
    assert [record.data.tag for record in ctx.artifacts] == succeeded


@pytest.mark.usefixtures("fast_switching")
def test_metrics_recorded_from_threads_are_all_kept_with_their_own_tags() -> None:
    metrics = FrozenMetrics()
    names, per_thread = 50, 3000

    def record(index: int) -> None:
        for step in range(per_thread):
            value = index * 100_000 + step
            metrics.add(f"loss{step % names}", value, tags={"value": value})

    for _ in range(5):  # a lost value shows in most rounds; five make it near certain
        metrics = FrozenMetrics()
        race(record)
        for name in metrics:
            values, tags = metrics[name], metrics.get_tags(name)
            assert len(values) == THREADS * per_thread // names, name
            assert [tag["value"] for tag in tags] == list(values), name


class Opaque:
    """An instance of an arbitrary class: stored as a private copy, copied again on each read."""

    def __init__(self, value: int) -> None:
        self.value = value


@pytest.mark.usefixtures("fast_switching")
def test_snapshots_and_pickles_taken_while_another_thread_records_do_not_fail() -> None:
    ctx = FrozenContext({"model": Opaque(0)})
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                ctx.as_dict()
                ctx.metrics.as_dict()
                pickle.dumps(ctx)
            except RuntimeError as error:  # dictionary changed size during iteration
                errors.append(error)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for index in range(5000):
            ctx.add(f"key{index}", Opaque(index))
            ctx.record(f"metric{index}", index)
    finally:
        done.set()
        reader.join()
    assert errors == []
