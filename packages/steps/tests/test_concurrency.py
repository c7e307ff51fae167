"""Locks, the running status, stale lock recovery and two processes sharing one folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from assay_steps import Backend, ItemTask, Step, _locks
from steps_testkit import CALLS, Mult, Slow, calls

TESTS = Path(__file__).parent


def infra(folder: Path) -> dict[str, object]:
    return {"backend": "Cached", "folder": folder}


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_lock(folder: Path, uid: str, pid: int, host: str = _locks.HOST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uid}.lock"
    path.write_text(json.dumps({"host": host, "pid": pid, "time": time.time()}))
    return path


def test_item_locked_by_a_live_process_is_running(folder: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        handle = Mult(infra=infra(folder)).lookup(1.0)
        write_lock(handle.paths.lock_folder, handle.uid, sleeper.pid)
        assert handle.status == "running"
        assert not handle.cached()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert handle.status is None  # its process is gone: the lock is stale


def test_stale_lock_of_a_dead_process_is_recovered(folder: Path) -> None:
    step = Mult(infra=infra(folder))
    handle = step.lookup(2.0)
    lock = write_lock(handle.paths.lock_folder, handle.uid, dead_pid())
    assert step.run(2.0) == 4.0
    assert calls("Mult") == [2.0]
    assert not lock.exists()
    assert not list(handle.paths.lock_folder.glob(".*.stale"))


def test_lock_of_another_host_is_stale_once_its_heartbeat_stops(folder: Path) -> None:
    handle = Mult(infra=infra(folder)).lookup(3.0)
    lock = write_lock(handle.paths.lock_folder, handle.uid, 1, host="elsewhere")
    assert handle.status == "running"  # cannot check a remote pid: trust the heartbeat
    old = time.time() - _locks.STALE_SECONDS - 5
    os.utime(lock, (old, old))
    assert handle.status is None
    assert Mult(infra=infra(folder)).run(3.0) == 6.0


def test_heartbeat_refreshes_held_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_locks, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(_locks, "_heartbeat", None)
    assert _locks.try_acquire(tmp_path, "item")
    path = Path(_locks.lock_path(tmp_path, "item"))
    os.utime(path, (0, 0))
    deadline = time.time() + 5
    while path.stat().st_mtime == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert path.stat().st_mtime > 0
    assert not _locks.try_acquire(tmp_path, "item")  # held and alive
    _locks.release(tmp_path, "item")
    assert not path.exists()


def test_waits_for_an_item_another_process_computes(folder: Path) -> None:
    step = Mult(infra=infra(folder))
    handle = step.lookup(5.0)
    # another process "computes" item 5.0: it holds the lock and writes the entry later
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from steps_testkit import Mult; from assay_steps import _locks;"
        "step = Mult(infra={'backend': 'Cached', 'folder': sys.argv[2]});"
        "h = step.lookup(5.0); h.paths.lock_folder.mkdir(parents=True, exist_ok=True);"
        "assert _locks.try_acquire(h.paths.lock_folder, h.uid); print('locked', flush=True);"
        "time.sleep(0.5); step._store(()).write_result(h.uid, 'from the other process');"
        "_locks.release(h.paths.lock_folder, h.uid)"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(TESTS), str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "locked"
        assert handle.status == "running"
        assert step.run(5.0) == "from the other process"
    finally:
        other.wait(timeout=30)
    assert calls("Mult") == []


class LetGo(Step):
    """Times ten; at input ``trigger`` it ends another process's hold on an item's lock.

    The owner process ``owner`` is killed (and reaped), or with ``owner=0`` the lock file is
    removed as its owner releases it without an entry (an earlier item of its own failed).
    """

    trigger: int = 0
    held_lock: str = ""
    owner: int = 0
    broken: bool = False  # every input fails (to cache errors under the same uids)

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["trigger", "held_lock", "owner", "broken"]

    def _run(self, value: int) -> int:
        CALLS.append(("LetGo", value))
        if value == self.trigger and self.held_lock:
            if self.owner:
                os.kill(self.owner, signal.SIGKILL)
                os.waitpid(self.owner, 0)
            else:
                os.unlink(self.held_lock)
        if value < 0 or self.broken:
            raise ValueError(f"bad input {value}")
        return value * 10


@pytest.fixture
def owner() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that stands for another process holding a lock."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()  # already reaped by the step: then returns at once


def hold(folder: Path, value: int, pid: int) -> Path:
    """Write the lock of item ``value`` of LetGo, owned by ``pid``."""
    handle = LetGo(infra=infra(folder)).lookup(value)
    return write_lock(handle.paths.lock_folder, handle.uid, pid)


def test_an_item_whose_owner_dies_before_the_wait_is_computed_once_by_the_waiter(
    folder: Path, owner: subprocess.Popen[bytes]
) -> None:
    lock = hold(folder, 1, owner.pid)
    step = LetGo(trigger=2, held_lock=str(lock), owner=owner.pid, infra=infra(folder))
    assert list(step.run_many([1, 2])) == [10, 20]
    # Item 1 was skipped while its owner lived, then computed here exactly once.
    assert calls("LetGo") == [2, 1]
    assert not lock.exists()


def test_an_item_released_without_an_entry_is_computed_once_by_the_waiter(folder: Path) -> None:
    lock = hold(folder, 1, os.getpid())  # held by a live process (this one, as another thread)
    step = LetGo(trigger=2, held_lock=str(lock), infra=infra(folder))
    assert list(step.run_many([1, 2, 3])) == [10, 20, 30]
    assert calls("LetGo") == [2, 3, 1]


def test_a_lost_item_before_a_failing_one_is_computed_and_the_items_after_it_are_not(
    folder: Path,
) -> None:
    lock = hold(folder, 1, os.getpid())
    step = LetGo(trigger=2, held_lock=str(lock), infra=infra(folder))
    with pytest.raises(ValueError, match="bad input -3"):
        list(step.run_many([1, 2, -3, 4]))
    assert calls("LetGo") == [2, -3, 1]
    assert [step.lookup(v).status for v in (1, 2, -3, 4)] == ["success", "success", "error", None]


@pytest.mark.parametrize("mode", ["force", "retry"])
def test_force_and_retry_recompute_an_item_whose_owner_died_instead_of_serving_the_old_entry(
    folder: Path, owner: subprocess.Popen[bytes], mode: str
) -> None:
    old = LetGo(broken=mode == "retry", infra=infra(folder))
    with (
        pytest.raises(ValueError, match="bad input 1")
        if mode == "retry"
        else contextlib.nullcontext()
    ):
        old.run(1)
    CALLS.clear()
    lock = hold(folder, 1, owner.pid)
    step = LetGo(
        trigger=2, held_lock=str(lock), owner=owner.pid, infra={**infra(folder), "mode": mode}
    )
    assert list(step.run_many([1, 2])) == [10, 20]
    assert calls("LetGo") == [2, 1]


class ReleasesAfterRunning(Backend):
    """Runs the tasks inline, then removes the lock files left in its step folders.

    It stands for another process that held an item and released it without an entry
    after the task skipped it, but before the steps layer looked for what it must wait for.
    """

    def _execute(self, tasks: list[ItemTask]) -> None:
        for task in tasks:
            task()
            for lock in task.paths.lock_folder.glob("*.lock"):
                lock.unlink()


class RunsNothing(Backend):
    """A broken backend: returns without running the tasks."""

    def _execute(self, tasks: list[ItemTask]) -> None:
        return None


def test_a_single_item_released_elsewhere_after_the_task_skipped_it_is_computed(
    folder: Path,
) -> None:
    hold(folder, 7, os.getpid())
    step = LetGo(infra={"backend": "ReleasesAfterRunning", "folder": folder})
    assert step.run(7) == 70
    assert calls("LetGo") == [7]


def test_a_backend_that_runs_nothing_reports_the_items_as_not_computed(folder: Path) -> None:
    step = LetGo(infra={"backend": "RunsNothing", "folder": folder})
    with pytest.raises(RuntimeError, match="was not computed"):
        step.run(1)
    assert calls("LetGo") == []


def test_a_lock_whose_owner_ended_unreaped_is_stale(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        # Not reaped: the process stays a zombie, which signals still reach.
        while _proc_state(ended.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _proc_state(ended.pid) == "Z"
        write_lock(tmp_path, "item", ended.pid)
        assert not _locks.is_live(tmp_path, "item")
        assert _locks.try_acquire(tmp_path, "item")
        _locks.release(tmp_path, "item")
    finally:
        ended.wait()


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return "?"


@pytest.mark.slow
def test_two_processes_on_one_folder_compute_each_item_once(tmp_path: Path) -> None:
    folder, logs = tmp_path / "cache", tmp_path / "logs"
    logs.mkdir()
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from steps_testkit import Slow;"
        "step = Slow(log_folder=sys.argv[3], infra={'backend': 'Cached', 'folder': sys.argv[2]});"
        "values = list(range(150)); import random; random.shuffle(values);"
        "out = list(step.run_many(values)); assert out == [v * v for v in values], out;"
        "print('ok')"
    )
    command = [sys.executable, "-c", script, str(TESTS), str(folder), str(logs)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert outputs == ["ok", "ok"]
    computed = [int(line) for log in logs.iterdir() for line in log.read_text().split()]
    assert sorted(computed) == list(range(150))  # every item exactly once, none lost
    step = Slow(log_folder=str(logs), infra={"backend": "Cached", "folder": folder})
    assert [step.lookup(v).status for v in range(150)] == ["success"] * 150
    assert not list(folder.rglob("*.lock"))
    assert [p.name for p in folder.rglob(".*")] == [".assay-cache"]  # only the marker
