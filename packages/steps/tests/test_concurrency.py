"""Claims in a step's run: the running status, waiting, lost items, two processes on a folder."""

from __future__ import annotations

import collections
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
from assay_steps import Backend, ItemTask, Step, _claims
from steps_testkit import CALLS, Logged, Mult, cached, calls
from store_testkit import TESTS, dead_pid

WRITES_LATER = """
import sys, time; sys.path.insert(0, sys.argv[1])
from steps_testkit import Mult
from assay_steps._claims import Claim
step = Mult(infra={"backend": "Cached", "folder": sys.argv[2]})
store = step._store(())
store.make_folders()
uid = step.lookup(5.0).uid
claim = Claim.take(store.folder, [uid])
assert claim.granted == [uid]
print("claimed", flush=True)
time.sleep(0.3)
store.write_result(uid, "from the other process")
store.sync()
claim.release()
"""


def write_claim(entries_folder: Path, uids: list[str], pid: int, host: str = _claims.HOST) -> Path:
    """A claim file of another process (``pid``), written by hand."""
    folder = entries_folder / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{host}-{pid}-test{time.monotonic_ns()}.claim"
    path.write_text(
        json.dumps({"host": host, "pid": pid, "time": time.time()}) + "\n" + "\n".join(uids)
    )
    return path


def test_item_claimed_by_a_live_process_is_running(folder: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        handle = Mult(infra=cached(folder)).lookup(1.0)
        write_claim(handle.paths.entries_folder, [handle.uid], sleeper.pid)
        assert handle.status == "running"
        assert not handle.cached()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert handle.status is None  # its process is gone: the claim is stale


def test_stale_claim_of_a_dead_process_is_recovered(folder: Path) -> None:
    step = Mult(infra=cached(folder))
    handle = step.lookup(2.0)
    claim = write_claim(handle.paths.entries_folder, [handle.uid], dead_pid())
    assert step.run(2.0) == 4.0
    assert calls("Mult") == [2.0]
    assert not claim.exists()
    assert not list(folder.rglob("*.tmp"))


def test_waits_for_an_item_another_process_computes(folder: Path) -> None:
    step = Mult(infra=cached(folder))
    handle = step.lookup(5.0)
    other = subprocess.Popen(
        [sys.executable, "-c", WRITES_LATER, str(TESTS), str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "claimed"
        assert handle.status == "running"
        assert step.run(5.0) == "from the other process"
    finally:
        other.wait(timeout=30)
    assert other.returncode == 0
    assert calls("Mult") == []


class LetGo(Step):
    """Times ten; at input ``trigger`` it ends another process's claim on an item.

    The owner process ``owner`` is killed (and reaped), or with ``owner=0`` the claim file is
    removed as its owner releases it without an entry (an earlier item of its own failed).
    """

    trigger: int = 0
    held_claim: str = ""
    owner: int = 0
    broken: bool = False  # every input fails (to cache errors under the same uids)

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["trigger", "held_claim", "owner", "broken"]

    def _run(self, value: int) -> int:
        CALLS.append(("LetGo", value))
        if value == self.trigger and self.held_claim:
            if self.owner:
                os.kill(self.owner, signal.SIGKILL)
                os.waitpid(self.owner, 0)
            else:
                os.unlink(self.held_claim)
        if value < 0 or self.broken:
            raise ValueError(f"bad input {value}")
        return value * 10


@pytest.fixture
def owner() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that stands for another process holding a claim."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()  # already reaped by the step: then returns at once


def hold(folder: Path, value: int, pid: int) -> Path:
    """Write a claim on item ``value`` of LetGo, owned by ``pid``."""
    handle = LetGo(infra=cached(folder)).lookup(value)
    return write_claim(handle.paths.entries_folder, [handle.uid], pid)


def test_an_item_whose_owner_dies_before_the_wait_is_computed_once_by_the_waiter(
    folder: Path, owner: subprocess.Popen[bytes]
) -> None:
    claim = hold(folder, 1, owner.pid)
    step = LetGo(trigger=2, held_claim=str(claim), owner=owner.pid, infra=cached(folder))
    assert list(step.run_many([1, 2])) == [10, 20]
    # Item 1 was skipped while its owner lived, then computed here exactly once.
    assert calls("LetGo") == [2, 1]
    assert not claim.exists()


def test_an_item_released_without_an_entry_is_computed_once_by_the_waiter(folder: Path) -> None:
    claim = hold(folder, 1, os.getpid())  # held by a live process (this one, as another task)
    step = LetGo(trigger=2, held_claim=str(claim), infra=cached(folder))
    assert list(step.run_many([1, 2, 3])) == [10, 20, 30]
    assert calls("LetGo") == [2, 3, 1]


def test_a_lost_item_before_a_failing_one_is_computed_and_the_items_after_it_are_not(
    folder: Path,
) -> None:
    claim = hold(folder, 1, os.getpid())
    step = LetGo(trigger=2, held_claim=str(claim), infra=cached(folder))
    with pytest.raises(ValueError, match="bad input -3"):
        list(step.run_many([1, 2, -3, 4]))
    assert calls("LetGo") == [2, -3, 1]
    assert [step.lookup(v).status for v in (1, 2, -3, 4)] == ["success", "success", "error", None]


@pytest.mark.parametrize("mode", ["force", "retry"])
def test_force_and_retry_recompute_an_item_whose_owner_died_instead_of_serving_the_old_entry(
    folder: Path, owner: subprocess.Popen[bytes], mode: str
) -> None:
    old = LetGo(broken=mode == "retry", infra=cached(folder))
    with (
        pytest.raises(ValueError, match="bad input 1")
        if mode == "retry"
        else contextlib.nullcontext()
    ):
        old.run(1)
    CALLS.clear()
    claim = hold(folder, 1, owner.pid)
    step = LetGo(
        trigger=2, held_claim=str(claim), owner=owner.pid, infra={**cached(folder), "mode": mode}
    )
    assert list(step.run_many([1, 2])) == [10, 20]
    assert calls("LetGo") == [2, 1]


class ReleasesAfterRunning(Backend):
    """Runs the tasks inline, then removes the claim files left in its step folders.

    It stands for another process that held an item and released it without an entry
    after the task skipped it, but before the steps layer looked for what it must wait for.
    """

    def _execute(self, tasks: list[ItemTask]) -> None:
        for task in tasks:
            task()
            for claim in task.paths.claims_folder.glob("*.claim"):
                claim.unlink()


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


RUN_MANY = """
import random, sys; sys.path.insert(0, sys.argv[1])
from steps_testkit import Logged
step = Logged(log=sys.argv[3], infra={"backend": "Cached", "folder": sys.argv[2]})
values = list(range(int(sys.argv[4])))
random.Random(int(sys.argv[5])).shuffle(values)
print("ready", flush=True)
sys.stdin.readline()  # both start together
out = list(step.run_many(values))
assert out == [v * v for v in values], out
print("ok", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("order", ["same", "shuffled"])
def test_two_processes_on_one_folder_compute_each_item_exactly_once(
    tmp_path: Path, order: str
) -> None:
    folder, log, n = tmp_path / "cache", tmp_path / "computed.log", 400
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUN_MANY,
                str(TESTS),
                str(folder),
                str(log),
                str(n),
                str(0 if order == "same" else seed),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    outputs = [p.communicate("go\n", timeout=120)[0].strip() for p in processes]
    assert outputs == ["ok", "ok"]  # both returned every result
    lines = log.read_text().split()
    computed = collections.Counter(int(item) for item in lines[1::2])
    assert sorted(computed) == list(range(n))  # none lost
    assert set(computed.values()) == {1}, computed.most_common(5)  # none computed twice
    step = Logged(log=str(log), infra=cached(folder))
    assert [step.lookup(v).status for v in range(n)] == ["success"] * n
    assert not list(folder.rglob("*.claim"))
    assert [p.name for p in folder.rglob(".*")] == [".assay-cache"]  # only the marker
