"""Lock files: an empty lock left by a dead creator, and an exclusive stale-lock takeover."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from assay_steps import Step, _backend, _locks
from steps_testkit import CALLS, calls

#: How long a test thread waits for the other one before giving up (never reached when the
#: interleaving works: each wait ends as soon as the other thread got there).
PATIENCE = 10.0


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def plant(folder: Path, uid: str, content: bytes, age: float = 0.0) -> Path:
    """Write a lock file of ``uid`` with ``content``, last touched ``age`` seconds ago."""
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(_locks.lock_path(folder, uid))
    path.write_bytes(content)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def owner_of(path: Path) -> dict[str, Any]:
    found = json.loads(path.read_bytes())
    assert isinstance(found, dict)
    return found


class Once(Step):
    """Times ten; records each computation. Calls ``on_run`` (if set) before computing."""

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return []

    def _run(self, value: int) -> int:
        CALLS.append(("Once", value))
        hook = ON_RUN.get(threading.get_ident())
        if hook is not None:
            hook()
        return value * 10


ON_RUN: dict[int, Callable[[], None]] = {}


# --- An empty lock: its creator died before writing its owner line ---------------------


def test_an_empty_lock_three_seconds_old_is_taken_over_at_once(tmp_path: Path) -> None:
    lock = plant(tmp_path, "item", b"", age=3.0)
    assert _locks.lock_state(tmp_path, "item") == "stale"
    assert _locks.try_acquire(tmp_path, "item")
    try:
        assert owner_of(lock)["pid"] == os.getpid()
    finally:
        _locks.release(tmp_path, "item")
    assert not lock.exists()


def test_a_fresh_empty_lock_is_live(tmp_path: Path) -> None:
    # Its creator may be about to write its owner line: the item stays its own.
    lock = plant(tmp_path, "item", b"")
    assert _locks.lock_state(tmp_path, "item") == "live"
    assert not _locks.try_acquire(tmp_path, "item")
    assert lock.read_bytes() == b""


def test_a_partial_lock_three_seconds_old_is_live(tmp_path: Path) -> None:
    # Not empty: an entry being written into the lock (it starts with a magic). Its writer
    # refreshes it every heartbeat, however long the entry takes to write.
    plant(tmp_path, "item", b"ASSAYP1\n partial", age=3.0)
    assert _locks.lock_state(tmp_path, "item") == "live"
    assert not _locks.try_acquire(tmp_path, "item")


def test_a_step_computes_an_item_whose_empty_lock_is_past_the_grace(tmp_path: Path) -> None:
    step = Once(infra={"backend": "Cached", "folder": tmp_path})
    handle = step.lookup(4)
    plant(handle.paths.lock_folder, handle.uid, b"", age=3.0)
    assert handle.status is None  # not "running": nobody owns it
    assert step.run(4) == 40
    assert calls("Once") == [4]


# --- Two processes that both judged a lock stale: one takes it over ---------------------


def wait(event: threading.Event, what: str) -> None:
    assert event.wait(PATIENCE), f"the other thread never {what}"


def test_two_recoverers_of_one_stale_lock_one_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(tmp_path, "item", json.dumps({"host": _locks.HOST, "pid": dead_pid()}).encode())
    judged, first_done = threading.Event(), threading.Event()
    late: list[int] = []
    original = _locks.lock_state

    def lock_state(folder: str | Path, uid: str) -> Any:
        state = original(folder, uid)
        if threading.get_ident() in late and state == "stale":
            # The late recoverer judged the lock stale; the first one now takes it over
            # before the late one acts on its (by then outdated) judgement.
            judged.set()
            wait(first_done, "took the lock over")
        return state

    monkeypatch.setattr(_locks, "lock_state", lock_state)
    won: dict[str, bool] = {}

    def recover_late() -> None:
        late.append(threading.get_ident())
        won["late"] = _locks.try_acquire(tmp_path, "item")

    thread = threading.Thread(target=recover_late)
    thread.start()
    try:
        wait(judged, "judged the lock stale")
        won["first"] = _locks.try_acquire(tmp_path, "item")
        first_done.set()
    finally:
        first_done.set()
        thread.join(PATIENCE)
    try:
        assert won == {"first": True, "late": False}
        assert owner_of(Path(_locks.lock_path(tmp_path, "item")))["pid"] == os.getpid()
    finally:
        _locks.release(tmp_path, "item")
    assert os.listdir(tmp_path) == []  # nothing left behind: no moved-away lock, no guard


def test_two_steps_recovering_one_stale_item_compute_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infra = {"backend": "Cached", "folder": tmp_path}
    handle = Once(infra=infra).lookup(3)
    plant(
        handle.paths.lock_folder,
        handle.uid,
        json.dumps({"host": _locks.HOST, "pid": dead_pid()}).encode(),
    )
    judged, computing, late_claimed = threading.Event(), threading.Event(), threading.Event()
    late: list[int] = []
    original_state, original_claim = _locks.lock_state, _backend.ItemTask._claim

    def lock_state(folder: str | Path, uid: str) -> Any:
        state = original_state(folder, uid)
        if threading.get_ident() in late and state == "stale" and not judged.is_set():
            judged.set()  # the late recoverer judged the lock stale: hold it there until
            wait(computing, "started computing")  # the first one took it and computes
        return state

    def claim(task: _backend.ItemTask, *args: Any) -> bool:
        # Once the late recoverer decided (took the item, or left it), the first one goes on.
        claimed = original_claim(task, *args)
        if threading.get_ident() in late:
            late_claimed.set()
        return claimed

    monkeypatch.setattr(_locks, "lock_state", lock_state)
    monkeypatch.setattr(_backend.ItemTask, "_claim", claim)
    results: dict[str, object] = {}

    def first() -> None:
        # Computes only once the late recoverer acted on its outdated judgement.
        ON_RUN[threading.get_ident()] = lambda: (computing.set(), wait(late_claimed, "claimed"))
        try:
            results["first"] = Once(infra=infra).run(3)
        except Exception as error:  # reported below, after the count of computations
            results["first"] = error

    def recover_late() -> None:
        late.append(threading.get_ident())
        try:
            results["late"] = Once(infra=infra).run(3)
        except Exception as error:
            results["late"] = error

    threads = [threading.Thread(target=recover_late), threading.Thread(target=first)]
    threads[0].start()
    wait(judged, "judged the lock stale")
    threads[1].start()
    for thread in threads:
        thread.join(PATIENCE * 2)
    ON_RUN.clear()
    assert calls("Once") == [3]  # computed once, by the process that won the takeover
    assert results == {"first": 30, "late": 30}


def test_a_lock_being_taken_over_is_live_and_left_alone(tmp_path: Path) -> None:
    # Another recoverer holds the guard: it is replacing the stale lock by its own.
    lock = plant(tmp_path, "item", json.dumps({"host": _locks.HOST, "pid": dead_pid()}).encode())
    guard = tmp_path / f".{lock.name}.takeover"
    guard.touch()
    assert _locks.lock_state(tmp_path, "item") == "live"
    assert not _locks.try_acquire(tmp_path, "item")
    assert guard.exists()
    assert lock.exists()


def test_the_guard_of_a_dead_recoverer_is_broken_once_old(tmp_path: Path) -> None:
    lock = plant(tmp_path, "item", json.dumps({"host": _locks.HOST, "pid": dead_pid()}).encode())
    guard = tmp_path / f".{lock.name}.takeover"
    guard.touch()
    then = time.time() - _locks.TAKEOVER_SECONDS - 1
    os.utime(guard, (then, then))
    assert _locks.lock_state(tmp_path, "item") == "stale"
    assert _locks.try_acquire(tmp_path, "item")
    try:
        assert owner_of(lock)["pid"] == os.getpid()
    finally:
        _locks.release(tmp_path, "item")
    assert os.listdir(tmp_path) == []


def test_breaking_a_guard_that_turned_fresh_puts_it_back(tmp_path: Path) -> None:
    # Judged stale, but broken and retaken by another process before this one moved it.
    guard = tmp_path / ".item.lock.takeover"
    guard.touch()
    _locks._break_guard(str(guard))
    assert os.listdir(tmp_path) == [guard.name]


def test_a_stale_lock_is_recovered_with_the_guard_left_behind_by_nobody(tmp_path: Path) -> None:
    lock = plant(tmp_path, "item", json.dumps({"host": _locks.HOST, "pid": dead_pid()}).encode())
    assert _locks.try_acquire(tmp_path, "item")
    assert owner_of(lock)["pid"] == os.getpid()
    assert os.listdir(tmp_path) == [lock.name]
    _locks.release(tmp_path, "item")
