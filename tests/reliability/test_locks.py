"""Locks left by killed workers are taken over; a live worker's lock never is.

Several processes recovering the same stale locks at once compute each item exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from assay_steps import _locks
from audit import audit_steps, count
from reliability_steps import (
    HEAVY,
    ItemFailed,
    ReliabilityPayload,
    computations,
    expected,
    fails,
    run_forked,
    same,
    sweep_all,
)

ITEMS = list(range(6))


def killed_at_replace(folder: Path, number: int) -> None:
    """Sweep, SIGKILLed at the ``number``-th rename (1: config.json, 2: code.json, 3: an entry)."""
    calls = [0]
    original = os.replace

    def replace(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == number:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    os.replace = replace
    ReliabilityPayload(infra={"backend": "Cached", "folder": folder}).run_many(ITEMS)


def killed_after_lock_creation(folder: Path) -> None:
    """Sweep, SIGKILLed right after the first lock file is created, before its content."""
    original: Callable[..., int] = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = original(path, flags, *args, **kwargs)
        if str(path).endswith(".lock") and flags & os.O_EXCL:
            os.kill(os.getpid(), signal.SIGKILL)
        return fd

    os.open = open_
    ReliabilityPayload(infra={"backend": "Cached", "folder": folder}).run_many(ITEMS)


def age(path: Path, seconds: float) -> None:
    """Make ``path`` look untouched for ``seconds`` (as if that much time had passed)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_lock_of_a_killed_worker_is_taken_over_at_once(tmp_path: Path) -> None:
    # Killed after its lock was written and before it started writing the entry: the lock
    # names the dead process, so the item is not "running" and a rerun takes it over.
    def killed_in_compute() -> None:
        original = ReliabilityPayload._run

        def run(self: ReliabilityPayload, value: int) -> Any:
            os.kill(os.getpid(), signal.SIGKILL)
            return original(self, value)

        ReliabilityPayload._run = run  # type: ignore[method-assign]
        ReliabilityPayload(infra={"backend": "Cached", "folder": tmp_path}).run_many(ITEMS)

    assert run_forked(killed_in_compute) == -signal.SIGKILL
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": tmp_path})
    assert len(list(tmp_path.glob("*/*/locks/*.lock"))) == 1
    assert step.lookup(0).status is None  # not "running": its process is gone
    step.run_many(ITEMS)
    assert audit_steps(tmp_path, ITEMS).complete == len(ITEMS)


def test_a_lock_without_owner_is_stale_after_two_missed_heartbeats(tmp_path: Path) -> None:
    # Killed while writing the entry into its lock: the lock holds part of an entry, and a live
    # owner refreshes it every HEARTBEAT_SECONDS, however long the entry takes to write.
    assert run_forked(partial(killed_at_replace, tmp_path, 3)) == -signal.SIGKILL
    locks = list(tmp_path.glob("*/*/locks/*.lock"))
    assert len(locks) == 1
    assert locks[0].stat().st_size > 0
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": tmp_path})
    age(locks[0], 1.5 * _locks.HEARTBEAT_SECONDS)
    assert step.lookup(0).status == "running"
    age(locks[0], 2.5 * _locks.HEARTBEAT_SECONDS)
    assert step.lookup(0).status is None
    step.run_many(ITEMS)
    assert audit_steps(tmp_path, ITEMS).complete == len(ITEMS)


def test_an_empty_lock_of_a_worker_killed_after_creating_it_is_stale_after_the_grace(
    tmp_path: Path,
) -> None:
    # Killed between creating its lock and writing its owner line: the lock is empty, which
    # a lock is for one system call only; past a short grace, nobody owns it.
    assert run_forked(partial(killed_after_lock_creation, tmp_path)) == -signal.SIGKILL
    locks = list(tmp_path.glob("*/*/locks/*.lock"))
    assert len(locks) == 1
    assert locks[0].stat().st_size == 0
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": tmp_path})
    age(locks[0], 0.0)
    assert step.lookup(0).status == "running"  # its creator may be writing the owner line
    age(locks[0], 3.0)
    assert step.lookup(0).status is None
    step.run_many(ITEMS)
    assert audit_steps(tmp_path, ITEMS).complete == len(ITEMS)


def test_a_live_lock_is_never_taken_over(tmp_path: Path) -> None:
    """A lock refreshed by its heartbeat is respected, even when its content is an entry."""
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": tmp_path})
    paths = step.lookup(0).paths
    paths.lock_folder.mkdir(parents=True)
    lock = paths.lock_folder / f"{step.lookup(0).uid}.lock"
    lock.write_bytes(b"ASSAYP1\n partial entry bytes")  # an entry being written into it
    age(lock, 0.5 * _locks.HEARTBEAT_SECONDS)
    assert step.lookup(0).status == "running"
    assert _locks.try_acquire(paths.lock_folder, step.lookup(0).uid) is False


RECOVERED = list(range(24))


def dead_pid() -> int:
    """The pid of a process that ended and was reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def plant_stale_locks(folder: Path) -> None:
    """Leave a stale lock on every item: a dead owner's, or an empty one past the grace."""
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": folder})
    pid = dead_pid()
    for i in RECOVERED:
        handle = step.lookup(i)
        handle.paths.lock_folder.mkdir(parents=True, exist_ok=True)
        lock = handle.paths.lock_folder / f"{handle.uid}.lock"
        if i % 2:
            lock.write_bytes(b"")
            age(lock, 3.0)
        else:
            lock.write_text(json.dumps({"host": _locks.HOST, "pid": pid, "time": time.time()}))


def recoverer(folder: Path, side: Path, start: float, reverse: bool) -> None:
    """Run the sweep once the common start time is reached, then check every result."""
    items = RECOVERED[::-1] if reverse else RECOVERED
    step = ReliabilityPayload(side_effects=str(side), infra={"backend": "Cached", "folder": folder})
    time.sleep(max(0.0, start - time.time()))
    sweep_all(step, items)
    for i in items:
        try:
            value = step.run(i)
        except ItemFailed:
            assert fails(i), f"item {i} raised"
        else:
            assert same(value, expected(i)), f"item {i}: wrong value {value!r:.60}"


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_recovering_the_same_stale_locks_compute_each_item_once(
    tmp_path: Path, processes: int
) -> None:
    for repeat in range(6 if HEAVY else 2):
        folder, side = tmp_path / f"run{repeat}" / "cache", tmp_path / f"run{repeat}" / "side"
        side.mkdir(parents=True)
        plant_stale_locks(folder)
        start = time.time() + 0.3  # lets every process be forked before any starts
        with ThreadPoolExecutor(processes) as pool:
            jobs = [partial(recoverer, folder, side, start, k % 2 == 1) for k in range(processes)]
            statuses = list(pool.map(run_forked, jobs))
        assert statuses == [0] * processes, "a recoverer raised (traceback on stderr)"
        found = audit_steps(folder, RECOVERED)
        assert (found.complete, found.wrong) == (len(RECOVERED), [])
        counts = computations(side)
        count("stale locks recovered concurrently", len(RECOVERED))
        count(
            "duplicate computations after a concurrent recovery",
            sum(counts.values()) - len(RECOVERED),
        )
        assert counts == dict.fromkeys(RECOVERED, 1)
        assert not list(folder.rglob("*.lock")), "a lock was left behind"
        hidden = [p for p in folder.rglob(".*") if p.name != ".assay-cache"]  # not the marker
        assert not hidden, "a guard or a moved-away lock was left behind"
