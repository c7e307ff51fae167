"""Thread and process pools: items of a step computed in parallel on this machine."""

from __future__ import annotations

import contextlib
import contextvars
import multiprocessing
import sys
from concurrent import futures
from concurrent.futures import BrokenExecutor
from typing import Any, ClassVar, Literal

import pydantic
from assay_steps import Backend, ItemTask

from ._jobs import JobError
from ._progress import ProgressBar, progress_enabled
from ._tasks import dumps, item_count, loads, run_shard, shard
from ._workers import worker_count

#: Shards per worker: small enough to keep per-shard overhead low, large enough that a slow
#: shard does not leave the other workers idle at the end.
SHARDS_PER_WORKER = 4


class _PoolBackend(Backend):
    """Base of the ``concurrent.futures`` pool backends."""

    max_jobs: int | None = pydantic.Field(default=128, gt=0)
    progress: bool | None = None

    _KIND: ClassVar[str] = ""

    def _execute(self, tasks: list[ItemTask]) -> None:
        n_items = item_count(tasks)
        workers = worker_count(self.max_jobs, n_items)
        if workers <= 1:
            # One worker is the inline case: no pool to start, no pickling.
            with self._bar(tasks, n_items) as bar:
                for task in tasks:
                    task()
                    bar.advance(len(task))
            return
        shards = shard(tasks, max_shards=min(n_items, SHARDS_PER_WORKER * workers))
        pool = self._pool(workers)
        interrupted = False
        try:
            with self._bar(tasks, n_items) as bar:
                running = {pool.submit(*self._call(piece)): piece for piece in shards}
                failure: BaseException | None = None
                unfinished = 0  # items of the shards a dead worker took down with it
                for done in futures.as_completed(running):
                    bar.advance(item_count(running[done]))
                    error = done.exception()
                    if isinstance(error, BrokenExecutor):
                        unfinished += item_count(running[done])
                    if error is not None and failure is None:
                        failure = error
                if isinstance(failure, BrokenExecutor):
                    raise _worker_died(tasks, unfinished) from failure
                if failure is not None:
                    raise failure
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if interrupted:  # before shutdown(), which forgets the worker processes
                _stop_workers(pool)
            # Every shard has ended (or an interrupt stops the rest): idle workers exit on
            # their own, so the results need not wait for them.
            pool.shutdown(wait=False, cancel_futures=True)

    def _bar(self, tasks: list[ItemTask], n_items: int) -> ProgressBar:
        name = type(tasks[0].step).__name__ if tasks else "items"
        return ProgressBar(
            n_items, f"{name} ({type(self).__name__})", progress_enabled(self.progress)
        )

    def _pool(self, workers: int) -> futures.Executor:
        raise NotImplementedError

    def _call(self, piece: list[ItemTask]) -> tuple[Any, ...]:
        return (run_shard, piece)


class ThreadPool(_PoolBackend):
    """Compute a step's missing items in a pool of threads of this process.

    Suits items that release the GIL (I/O, numpy, native code). The worker count is
    ``min(max_jobs, items, os.cpu_count())``. Items run in a copy of the caller's context, so
    they see the ``param_scope`` values current around ``run_many``, as inline items do.

    Args:
        max_jobs: Most threads to run at once.
        progress: Show a progress bar (rich) over the items; ``None`` shows it only when
            stderr is a terminal.

    Example:
        >>> from assay_steps import Step
        >>> class Square(Step):
        ...     def _run(self, value: int) -> int:
        ...         return value * value
        >>> step = Square(infra={"backend": "ThreadPool", "folder": "cache", "max_jobs": 4})
        >>> list(step.run_many([1, 2, 3]))
        [1, 4, 9]

    """

    def _pool(self, workers: int) -> futures.Executor:
        return futures.ThreadPoolExecutor(workers, thread_name_prefix="assay-threadpool")

    def _call(self, piece: list[ItemTask]) -> tuple[Any, ...]:
        # A pool thread starts with an empty context; each shard runs in a copy of the
        # caller's, so items see the caller's param_scope as inline items do (and scopes an
        # item enters stay in its own copy).
        return (contextvars.copy_context().run, run_shard, piece)


class ProcessPool(_PoolBackend):
    """Compute a step's missing items in a pool of worker processes on this machine.

    Suits CPU-bound Python code. The worker count is ``min(max_jobs, items,
    os.cpu_count())``: every core works (exca keeps one back, so on 2 cores it never runs two
    items at once). Tasks travel to the workers with cloudpickle, so steps defined in a
    script or a notebook work too. Workers write their results to the cache themselves.

    Args:
        max_jobs: Most worker processes to run at once.
        progress: Show a progress bar (rich) over the items; ``None`` shows it only when
            stderr is a terminal.
        start_method: How workers start (``"fork"``, ``"spawn"``, ``"forkserver"``);
            ``None`` uses ``fork`` where it exists (fast, and sees the caller's classes),
            else the platform's default.

    Example:
        >>> from assay_steps import Step
        >>> class Cube(Step):
        ...     def _run(self, value: int) -> int:
        ...         return value**3
        >>> step = Cube(infra={"backend": "ProcessPool", "folder": "cache", "max_jobs": 2})
        >>> list(step.run_many([1, 2, 3]))
        [1, 8, 27]

    """

    start_method: Literal["fork", "spawn", "forkserver"] | None = None

    def _pool(self, workers: int) -> futures.Executor:
        method = self.start_method
        if method is None and sys.platform != "win32" and "fork" in _methods():
            method = "fork"
        context = multiprocessing.get_context(method)
        return futures.ProcessPoolExecutor(workers, mp_context=context)

    def _call(self, piece: list[ItemTask]) -> tuple[Any, ...]:
        # cloudpickle, not pickle: steps and functions defined in __main__ or a notebook.
        return (_run_pickled, dumps(piece))


def _stop_workers(pool: futures.Executor) -> None:
    """End the worker processes of an interrupted pool now.

    A Ctrl-C sent to the driver alone (``kill -INT``, a scheduler signalling one process)
    reaches no worker: they would finish the items they hold, and those queued for them,
    before the driver's process could exit. The items they leave hold locks of dead processes,
    which the next run takes over and computes (entries are never half-written).
    """
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if callable(terminate):
        terminate()
        return
    processes = getattr(pool, "_processes", None) or {}  # a ThreadPoolExecutor has none
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.terminate()


def _worker_died(tasks: list[ItemTask], unfinished: int) -> JobError:
    """Return the error for a pool whose worker process died (killed, out of memory, a crash)."""
    steps = sorted({type(task.step).__name__ for task in tasks})
    return JobError(
        f"a worker process of the pool died (killed, out of memory, os._exit or a crash in "
        f"native code) while computing items of {', '.join(steps)}: up to {unfinished} of the "
        f"{item_count(tasks)} item(s) sent to the pool were not finished. Items it did not "
        "finish stay uncached (never half-written); run again to compute them"
    )


def _methods() -> list[str]:
    return multiprocessing.get_all_start_methods()


def _run_pickled(payload: bytes) -> None:
    run_shard(loads(payload))
