"""Per-thread and per-task isolation, and the ways to carry a scope into a thread."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from assay_scope import ScopedThread, auto_param, bind_scope, param_scope


@auto_param("job")
def job(width: int = 8) -> int:
    return width


def test_threads_in_their_own_scopes_never_see_each_other() -> None:
    barrier = threading.Barrier(4)
    seen: dict[int, list[int]] = {}

    def worker(n: int) -> None:
        with param_scope(**{"job.width": n}):
            barrier.wait()  # every thread is inside its scope at the same time
            seen[n] = [job() for _ in range(50)] + [param_scope.job.width(0)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {n: [n] * 51 for n in range(4)}


def test_asyncio_tasks_in_their_own_scopes_never_see_each_other() -> None:
    async def task(n: int) -> list[int]:
        with param_scope(**{"job.width": n}):
            values = []
            for _ in range(5):
                await asyncio.sleep(0)  # let the other tasks run inside their scopes
                values.append(job())
            return values

    async def main() -> list[list[int]]:
        with param_scope(**{"job.width": 100}):
            results = await asyncio.gather(*(task(n) for n in range(5)))
            assert job() == 100
            return list(results)

    assert asyncio.run(main()) == [[n] * 5 for n in range(5)]


def test_a_task_started_inside_a_scope_sees_it() -> None:
    async def main() -> int:
        with param_scope(**{"job.width": 7}):
            return await asyncio.create_task(asyncio.to_thread(job))

    assert asyncio.run(main()) == 7


def test_a_plain_thread_sees_only_the_frozen_base() -> None:
    seen: list[int] = []
    with param_scope(**{"job.width": 3}):
        thread = threading.Thread(target=lambda: seen.append(job()))
        thread.start()
        thread.join()
    assert seen == [8]


def test_scoped_thread_sees_the_scope_it_was_created_in() -> None:
    seen: list[int] = []
    with param_scope(**{"job.width": 3}):
        thread = ScopedThread(target=lambda: seen.append(job()))
    with param_scope(**{"job.width": 4}):
        thread.start()
        thread.join()
    assert seen == [3]


def test_pool_work_submitted_through_copy_context_sees_the_scope() -> None:
    with ThreadPoolExecutor(2) as pool, param_scope(**{"job.width": 5}):
        context = contextvars.copy_context()
        futures = [pool.submit(context.copy().run, job) for _ in range(4)]
        assert [future.result() for future in futures] == [5] * 4
        assert pool.submit(job).result() == 8  # without the context, the base


def test_bind_scope_carries_the_scope_into_concurrent_calls() -> None:
    with param_scope(**{"job.width": 6}):
        bound = bind_scope(job)

    def nested() -> int:
        with param_scope(**{"job.width": 1}):
            return job()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: bound(), range(8))) == [6] * 8
        assert pool.submit(bind_scope(nested)).result() == 1
    assert job() == 8


def test_frozen_publishes_the_current_values_to_threads_started_later() -> None:
    with param_scope(**{"job.width": 9, "seed": 1}):
        param_scope.frozen()
    seen: list[tuple[int, int]] = []
    thread = threading.Thread(target=lambda: seen.append((job(), param_scope.seed(0))))
    thread.start()
    thread.join()
    assert seen == [(9, 1)]
    with param_scope(**{"job.width": 2}):
        assert job() == 2  # scopes still override the frozen base
