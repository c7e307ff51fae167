"""Thread and process pools: items of a step computed in parallel on this machine."""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
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
#: How often a pool worker's watchdog looks whether the process that started it is alive.
WATCH_SECONDS = 0.5
#: ``prctl`` option: the signal this process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


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
                running: dict[futures.Future[Any], list[ItemTask]] = {}
                failure: BaseException | None = None
                unfinished = 0  # items of the shards a dead worker took down with it
                for sent, piece in enumerate(shards):
                    try:
                        running[pool.submit(*self._call(piece))] = piece
                    except BrokenExecutor as broken:  # a worker died before all were sent
                        failure = broken
                        unfinished = sum(item_count(rest) for rest in shards[sent:])
                        break
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

    Examples:
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
    script or a notebook work too. Workers write their results to the cache themselves, and
    end with the process that started them, even when it is killed (SIGKILL, SIGTERM).

    Args:
        max_jobs: Most worker processes to run at once.
        progress: Show a progress bar (rich) over the items; ``None`` shows it only when
            stderr is a terminal.
        start_method: How workers start (``"fork"``, ``"spawn"``, ``"forkserver"``);
            ``None`` uses ``fork`` where it exists (fast, and sees the caller's classes),
            else the platform's default.

    Examples:
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
        # Workers die with this process (a fork server, not this process, starts its own).
        bind = (os.getpid(), context.get_start_method() != "forkserver")
        return futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_bind_to_driver, initargs=bind
        )

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


def _bind_to_driver(driver: int, parent_is_driver: bool) -> None:
    """Make this pool worker die with its driver (run first in each worker).

    A driver killed with SIGKILL or SIGTERM cannot stop its workers. Left alone they would
    wait forever on the pool's queue (each holds the queue's write end open for the others),
    keeping the driver's stdout, stderr and open files with them. On Linux the kernel sends
    the worker SIGKILL when its parent, the driver, dies; a daemon thread also checks the
    parent every ``WATCH_SECONDS`` (elsewhere, the only guard). A fork server's worker
    watches the driver itself: the fork server lives as long as any of its workers does. A
    worker killed amid an item leaves no half-written entry: its lock names a dead process
    and the next run takes the item over.

    Args:
        driver: The driver's pid.
        parent_is_driver: The driver started this worker (fork, spawn), not a fork server.
            A worker whose parent is already another process (the driver died before this
            ran) ends at once.

    """
    if sys.platform == "win32":  # no reparenting to watch for, nor a death signal
        return
    if not parent_is_driver:
        _watch_driver(driver)
        return
    parent = os.getppid()
    if parent != driver:
        _end_worker()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the death signal was set
        _end_worker()
    _watch_parent(parent)


def _die_with_parent() -> None:
    """Ask the kernel for SIGKILL when this process's parent dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):  # an exotic libc: the watchdog remains
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _watch_parent(parent: int, interval: float = WATCH_SECONDS) -> None:
    """End this process once its parent ``parent`` is gone (checked every ``interval`` s).

    An orphan is handed to another parent (init or a subreaper), so its parent pid changes.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        _end_worker()

    threading.Thread(target=watch, name="assay-pool-watchdog", daemon=True).start()


def _watch_driver(driver: int, interval: float = WATCH_SECONDS) -> None:
    """End this process once the process ``driver`` (not its parent) has ended.

    Where the system has process handles (Linux), the watchdog waits on the driver's, which
    names that very process even once its pid is reused; elsewhere it looks every ``interval``
    seconds whether the pid still runs.
    """
    handle: int | None = None
    with contextlib.suppress(AttributeError, OSError):  # no pidfd_open here
        handle = os.pidfd_open(driver)
    if not _running(driver):  # checked after opening: the handle is of the driver
        _end_worker()

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])  # readable once the process has ended
        else:
            while _running(driver):
                time.sleep(interval)
        _end_worker()

    threading.Thread(target=watch, name="assay-pool-watchdog", daemon=True).start()


def _running(pid: int) -> bool:
    """Return whether process ``pid`` runs (a zombie has ended: it only awaits its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[-1].split()[:1]
    except OSError:  # no /proc here: trust the signal test
        return True
    return state not in ([b"Z"], [b"X"])


def _end_worker() -> None:
    """End this worker at once, as the kernel's death signal does."""
    os.kill(os.getpid(), signal.SIGKILL)


def _run_pickled(payload: bytes) -> None:
    run_shard(loads(payload))
