"""Locks left by killed workers are taken over; a live worker's lock never is."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from assay_steps import _locks
from audit import audit_steps
from reliability_steps import ReliabilityPayload, run_forked

ITEMS = list(range(6))


def killed_at_replace(folder: Path, number: int) -> None:
    """Sweep, SIGKILLed at the ``number``-th rename (1: config.json, 2: the first entry)."""
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
    assert len(list(tmp_path.glob("*/locks/*.lock"))) == 1
    assert step.lookup(0).status is None  # not "running": its process is gone
    step.run_many(ITEMS)
    assert audit_steps(tmp_path, ITEMS).complete == len(ITEMS)


@pytest.mark.parametrize(
    "kill",
    [partial(killed_at_replace, number=2), killed_after_lock_creation],
    ids=["killed-while-writing-the-entry", "killed-after-creating-the-lock"],
)
def test_a_lock_without_owner_is_stale_after_two_missed_heartbeats(
    tmp_path: Path, kill: Callable[[Path], None]
) -> None:
    assert run_forked(partial(kill, tmp_path)) == -signal.SIGKILL
    locks = list(tmp_path.glob("*/locks/*.lock"))
    assert len(locks) == 1
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": tmp_path})
    # A live owner refreshes its lock every HEARTBEAT_SECONDS, even while it writes the entry.
    age(locks[0], 2.5 * _locks.HEARTBEAT_SECONDS)
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
