"""Crash during write: workers killed with SIGKILL at many points while writing.

After every kill: no partial entry is read (none exists: every entry that is present
verifies), every complete entry is correct, and a rerun completes the sweep with every
result equal to a clean run's. The heavy variant (``ASSAY_RELIABILITY_HEAVY=1``) tries well
over 100 kill points.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from audit import (
    audit_steps,
    check_items_from_run_many,
    count,
    metrics_by_run,
    stray_files,
)
from reliability_steps import (
    HEAVY,
    ReliabilityPayload,
    count_calls,
    kill_at_call,
    run_forked,
    sweep_all,
)

from assay import Experiment, Results, explicit

ITEMS = list(range(24))
pytestmark = pytest.mark.usefixtures("quick_stale_locks")
HERE = Path(__file__).resolve().parent


def sweep(folder: Path, items: list[int] = ITEMS) -> None:
    """Compute every item into ``folder`` (the worker's job)."""
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": folder})
    # run_many computes and writes the missing entries before returning; an item that raises
    # ends its batch (the items after it stay missing), so a sweep runs one segment at a time.
    sweep_all(step, items)


def sweep_killed_at(folder: Path, number: int) -> None:
    """Sweep, SIGKILLed at this process's ``number``-th watched file-system call."""
    with kill_at_call(number):
        sweep(folder)


def check_after_kill(folder: Path) -> int:
    """Audit a folder a killed worker left behind; return how many items are complete."""
    found = audit_steps(folder, ITEMS)
    count("items read back after a kill", found.complete)
    count("wrong values returned", len(found.wrong))
    count("corrupt entries after a kill", found.corrupt)
    assert found.wrong == [], found.wrong
    assert found.corrupt == 0, "a killed worker left an entry that does not verify"
    assert stray_files(folder) == []
    return found.complete


def check_rerun_completes(folder: Path) -> None:
    """A rerun after the kills completes the sweep, every result equal to a clean run's."""
    sweep(folder)
    found = audit_steps(folder, ITEMS)
    lost = len(ITEMS) - found.complete
    count("items lost", lost)
    count("wrong values returned", len(found.wrong))
    assert (lost, found.wrong) == (0, [])
    assert check_items_from_run_many(folder, ITEMS) == []
    leftover = [p.name for p in folder.glob("*/*/locks/*") if not p.name.startswith(".")]
    assert leftover == [], f"locks left after a complete rerun: {leftover}"


def test_clean_run_is_the_reference(tmp_path: Path) -> None:
    sweep(tmp_path)
    found = audit_steps(tmp_path, ITEMS)
    assert (found.complete, found.wrong) == (len(ITEMS), [])


def test_sigkill_at_file_system_calls_of_the_write_path(tmp_path: Path) -> None:
    """Kill the worker at its k-th open/write/rename/unlink/... call, for many k.

    Each case kills a first worker at call k, then the recovering worker at a random call
    (a crash during recovery, with stale locks to take over), audits after each kill, and
    reruns to completion.
    """
    calls = count_calls(lambda: sweep(tmp_path / "count"))
    assert calls > 5 * len(ITEMS)  # the write path was really watched
    rng = random.Random(20261125)
    points = 60 if HEAVY else 6
    firsts = sorted(rng.sample(range(1, calls + 1), points))
    for case, first in enumerate(firsts):
        folder = tmp_path / f"case{case}"

        assert run_forked(partial(sweep_killed_at, folder, first)) == -signal.SIGKILL
        count("kill points tried")
        check_after_kill(folder)
        second = rng.randrange(1, calls)

        status = run_forked(partial(sweep_killed_at, folder, second))
        assert status in (0, -signal.SIGKILL)  # 0: the recovery needed fewer calls
        count("kill points tried", status != 0)
        check_after_kill(folder)
        check_rerun_completes(folder)


def test_sigkill_at_random_times(tmp_path: Path) -> None:
    """Kill workers after random delays over the length of a sweep, several times per folder."""
    began = time.perf_counter()
    sweep(tmp_path / "timing")
    duration = time.perf_counter() - began
    rng = random.Random(7)
    rounds, kills = (10, 6) if HEAVY else (2, 4)
    for case in range(rounds):
        folder = tmp_path / f"round{case}"
        complete = 0
        for _ in range(kills):
            delay = rng.uniform(0.0, duration * 1.2)
            status = run_forked(partial(sweep, folder), kill_after=delay)
            assert status in (0, -signal.SIGKILL)
            count("kill points tried", status != 0)
            now = check_after_kill(folder)
            assert now >= complete, "a kill removed entries that were complete"
            complete = now
        check_rerun_completes(folder)


@pytest.mark.slow
def test_sigkill_of_a_process_pool_sweep_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """Kill a whole process group (driver and pool workers), as a crashed job is killed."""
    rng = random.Random(3)
    kills = 8 if HEAVY else 1
    folder = tmp_path / "pool"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    for _ in range(kills):
        worker = subprocess.Popen(
            [sys.executable, str(HERE / "sweep_worker.py"), str(folder), "ProcessPool"],
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # Wait until the pool has started writing, then kill at a random point of the sweep.
        deadline = time.monotonic() + 30
        while not list(folder.glob("*/*/locks/*")) and time.monotonic() < deadline:
            if worker.poll() is not None:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            count("kill points tried")
        _, err = worker.communicate(timeout=30)
        assert worker.returncode in (0, -signal.SIGKILL), err.decode()
        time.sleep(0.05)  # orphaned pool workers, if any, have the same group and are gone
        check_after_kill(folder)
    check_rerun_completes(folder)


# ---------------------------------------------------------------- experiments


def _experiment(folder: Path) -> Experiment:
    return Experiment(
        "crash",
        "reliability_steps:noisy",
        explicit([{"n": 50 + 10 * i, "sleep": 0.004} for i in range(8)]),
        replicates=3,
        seed=11,
        folder=folder,
        progress=False,
    )


def run_experiment(folder: Path) -> None:
    _experiment(folder).run()


def test_sigkill_of_an_experiment_driver(tmp_path: Path) -> None:
    """Kill the driver of a sweep (it writes run records and the SQLite index) at random times.

    After each kill the folder loads, every run it reports complete equals the clean run's,
    and a final rerun completes the sweep with results equal to a clean run's.
    """
    began = time.perf_counter()
    clean = metrics_by_run(_experiment(tmp_path / "clean").run())
    duration = time.perf_counter() - began
    assert len(clean) == 24
    assert {s for s, _ in clean.values()} == {"success"}
    rng = random.Random(5)
    rounds, kills = (8, 5) if HEAVY else (1, 4)
    for case in range(rounds):
        folder = tmp_path / f"round{case}"
        for _ in range(kills):
            delay = rng.uniform(0.0, duration * 1.5)
            status = run_forked(partial(run_experiment, folder), kill_after=delay)
            assert status in (0, -signal.SIGKILL)
            count("kill points tried", status != 0)
            if not (folder / "index.sqlite").exists():
                continue  # killed before the index was created
            so_far = metrics_by_run(Results.load(folder))
            for run_id, (status_, metrics) in so_far.items():
                if status_ == "success":
                    ok = metrics == clean[run_id][1]
                    count("wrong values returned", not ok)
                    assert ok, f"run {run_id}: {metrics} != {clean[run_id][1]}"
                else:
                    assert status_ in ("pending", "cancelled"), status_
        final = metrics_by_run(_experiment(folder).run())
        lost = sum(final.get(k) != v for k, v in clean.items())
        count("items lost", lost)
        assert final == clean
        artifacts = list((folder / "runs").glob("*/artifacts/draws.npy"))
        assert len(artifacts) == len(clean)


@pytest.mark.slow
def test_a_killed_pool_worker_records_its_runs_as_cancelled_and_a_rerun_recovers(
    tmp_path: Path,
) -> None:
    def experiment(folder: Path) -> Experiment:
        return Experiment(
            "killed-worker",
            "reliability_steps:held",
            explicit([{"i": i} for i in range(3)]),
            context={"hold": str(tmp_path / "hold"), "kill": str(tmp_path / "kill")},
            backend={"backend": "ProcessPool", "max_jobs": 2},  # 1 would run inline
            folder=folder,
            progress=False,
        )

    clean = metrics_by_run(experiment(tmp_path / "clean").run())
    (tmp_path / "kill").touch()  # the worker process SIGKILLs itself
    with pytest.raises(Exception, match=r"(?i)terminated|broken|died|killed"):
        experiment(tmp_path / "exp").run()
    count("kill points tried")
    statuses = {row.run_id: row.status for row in Results.load(tmp_path / "exp")}
    assert set(statuses.values()) == {"cancelled"}, statuses
    (tmp_path / "kill").unlink()
    assert metrics_by_run(experiment(tmp_path / "exp").run()) == clean
