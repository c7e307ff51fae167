"""param_scope.frozen(): threads started later see the values, the caller keeps what it saw."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from assay_scope import isolated_base, param_scope


def in_new_thread(read: Callable[[], Any]) -> Any:
    """What ``read`` returns in a plain thread started now (it sees only the frozen base)."""
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(read()))
    thread.start()
    thread.join()
    return seen[0]


def test_frozen_in_a_block_leaves_nothing_in_the_calling_thread_after_it() -> None:
    # hyperparameter's own test of frozen(), then the example of its API reference for
    # __enter__, in one thread: the example must print what it prints in a fresh thread.
    with param_scope():
        param_scope.A.B = 1
        param_scope.frozen()
    assert in_new_thread(lambda: param_scope.A.B()) == 1
    assert param_scope.current().storage().storage() == {}
    with param_scope():
        param_scope.p = "origin"
        with param_scope(**{"p": "origin"}) as ps:
            assert ps.storage().storage() == {"p": "origin"}


def test_leaving_each_block_restores_what_the_caller_saw_before_it() -> None:
    with param_scope(r=1):
        with param_scope(s=2):
            param_scope.frozen()
            assert (param_scope.r(0), param_scope.s(0)) == (1, 2)
        assert (param_scope.r(0), param_scope.s(0)) == (1, 0)
    assert (param_scope.r(0), param_scope.s(0)) == (0, 0)
    assert in_new_thread(lambda: (param_scope.r(0), param_scope.s(0))) == (1, 2)


def test_frozen_at_top_level_keeps_the_values_written_there() -> None:
    param_scope.q = 5
    param_scope.frozen()
    assert (param_scope.q(0), in_new_thread(lambda: param_scope.q(0))) == (5, 5)


def test_a_scope_made_before_frozen_keeps_the_base_it_was_made_with() -> None:
    early = param_scope(x=1)
    with param_scope(seed=3):
        param_scope.frozen()
    assert early.seed(0) == 0
    with early:
        assert param_scope.seed(0) == 0
    assert in_new_thread(lambda: param_scope(x=1).seed(0)) == 3


def test_a_thread_inside_its_scopes_keeps_its_base_and_one_that_entered_none_sees_it() -> None:
    entered, unused_ready, published = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def inside_a_scope() -> None:
        with param_scope(t=1):
            entered.set()
            assert published.wait(10)
            seen["inside"] = param_scope.seed(0)
        seen["after its scope"] = param_scope.seed(0)

    def no_scope_yet() -> None:
        unused_ready.set()
        assert published.wait(10)
        seen["no scope yet"] = param_scope.seed(0)

    threads = [threading.Thread(target=inside_a_scope), threading.Thread(target=no_scope_yet)]
    for thread in threads:
        thread.start()
    assert entered.wait(10)
    assert unused_ready.wait(10)
    with param_scope(seed=3):
        param_scope.frozen()
    published.set()
    for thread in threads:
        thread.join()
    assert seen == {"inside": 0, "after its scope": 0, "no scope yet": 3}


async def read_seed() -> int:
    return param_scope.seed(0)


def test_tasks_started_by_the_caller_see_what_the_caller_sees() -> None:
    async def main() -> tuple[int, int]:
        with param_scope(seed=3):
            param_scope.frozen()
            inside = await asyncio.create_task(read_seed())
        return inside, await asyncio.create_task(read_seed())

    assert asyncio.run(main()) == (3, 0)
    assert in_new_thread(lambda: asyncio.run(read_seed())) == 3


def test_a_thread_that_read_before_keeps_the_base_it_read() -> None:
    read, published = threading.Event(), threading.Event()
    seen: list[int] = []

    def reads_twice() -> None:
        seen.append(param_scope.seed(0))
        read.set()
        assert published.wait(10)
        seen.append(param_scope.seed(0))

    thread = threading.Thread(target=reads_twice)
    thread.start()
    assert read.wait(10)
    with param_scope(seed=3):
        param_scope.frozen()
    published.set()
    thread.join()
    assert seen == [0, 0]  # as in hyperparameter, whose threads copy the base at first use


def test_a_block_started_later_starts_from_the_published_base_as_a_new_thread() -> None:
    # An operation's run (an isolated_base block) sees what was published before it started,
    # whether it runs in this thread or in a new one.
    with param_scope(seed=3):
        param_scope.frozen()
    with isolated_base():
        assert (param_scope.seed(0), in_new_thread(lambda: param_scope.seed(0))) == (3, 3)
    assert param_scope.seed(0) == 0
