"""Working with the steps layer's item tasks: packing them into shards, running a shard."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import cloudpickle  # type: ignore[import-untyped]
from assay_steps import ItemTask

from ._packing import pack


def item_count(tasks: Sequence[ItemTask]) -> int:
    """Return the number of items over all ``tasks``."""
    return sum(len(task) for task in tasks)


def shard(tasks: Sequence[ItemTask], max_shards: int, min_items: int = 1) -> list[list[ItemTask]]:
    """Pack the items of ``tasks`` into at most ``max_shards`` shards (lists of tasks).

    Every shard holds at least ``min_items`` items (unless there are fewer in total), sizes
    differ by at most one, and items stay in order. A shard may hold pieces of several tasks
    (of several steps), which then run in the same worker or job.
    """
    units = [(index, position) for index, task in enumerate(tasks) for position in range(len(task))]
    shards: list[list[ItemTask]] = []
    for group in pack(units, max_jobs=max_shards, min_items_per_job=min_items):
        pieces: list[ItemTask] = []
        # Consecutive items of one task become one sub-task.
        start = 0
        while start < len(group):
            index = group[start][0]
            end = start
            while end < len(group) and group[end][0] == index:
                end += 1
            first, last = group[start][1], group[end - 1][1] + 1
            pieces.append(_select(tasks[index], first, last))
            start = end
        shards.append(pieces)
    return shards


def _select(task: ItemTask, first: int, last: int) -> ItemTask:
    # The caller's in-memory store stays behind: every worker opens its own on the folder.
    return dataclasses.replace(
        task, uids=task.uids[first:last], values=task.values[first:last], store=None
    )


def share(shard: Sequence[ItemTask], rank: int, count: int) -> list[ItemTask]:
    """Return the part of ``shard`` that task ``rank`` of a job's ``count`` tasks computes.

    The tasks of one job (``tasks_per_node``) all receive the shard; each takes every
    ``count``-th item from its rank on, so that they share the work without waiting on each
    other's claims.

    Examples:
        >>> from pathlib import Path
        >>> from assay_steps import StepPaths
        >>> task = ItemTask(None, (), StepPaths(Path("c"), "S-0"), list("abcde"), [1, 2, 3, 4, 5])
        >>> [piece.uids for piece in share([task], 1, 2)]
        [['b', 'd']]

    """
    if count <= 1:
        return list(shard)
    pieces = []
    for task in shard:
        picked = range(rank, len(task.uids), count)
        if len(picked):
            pieces.append(
                dataclasses.replace(
                    task,
                    uids=[task.uids[i] for i in picked],
                    values=[task.values[i] for i in picked],
                    store=None,
                )
            )
    return pieces


def run_shard(shard: Sequence[ItemTask]) -> None:
    """Run every task of a shard in this process (the function a worker or a job calls).

    The tasks cache their items' results and errors themselves; an exception escaping a task
    (a broken batch protocol, say) propagates to the caller after the shard's other tasks ran.
    """
    failure: BaseException | None = None
    for task in shard:
        try:
            task()
        except Exception as error:
            failure = failure or error
    if failure is not None:
        raise failure


_registering = threading.Lock()


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` for another process, with cloudpickle.

    Classes and functions of modules that another process cannot import (modules made at run
    time, such as a page of code run in a namespace) travel by value; cloudpickle already sends
    those of ``__main__`` by value, and imports the others by name.
    """
    with _registering, _by_value(_unimportable_modules()):
        return bytes(cloudpickle.dumps(obj))


def loads(payload: bytes) -> Any:
    """Unpickle what ``dumps`` made."""
    return cloudpickle.loads(payload)


def _unimportable_modules() -> list[str]:
    return [
        name
        for name, module in list(sys.modules.items())
        if name != "__main__"
        and module is not None
        and getattr(module, "__spec__", None) is None
        and getattr(module, "__file__", None) is None
        and name not in sys.builtin_module_names
    ]


@contextlib.contextmanager
def _by_value(names: list[str]) -> Iterator[None]:
    registered = []
    try:
        for name in names:
            with contextlib.suppress(ValueError):  # already registered by the user
                cloudpickle.register_pickle_by_value(sys.modules[name])
                registered.append(name)
        yield
    finally:
        for name in registered:
            with contextlib.suppress(ValueError, KeyError):
                cloudpickle.unregister_pickle_by_value(sys.modules[name])
