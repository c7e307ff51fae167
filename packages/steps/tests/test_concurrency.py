"""Locks, the running status, stale lock recovery and two processes sharing one folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from assay_steps import _locks
from steps_testkit import Mult, Slow, calls

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
    assert not list(folder.rglob(".*"))
