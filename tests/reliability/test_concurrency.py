"""Concurrent writers: 2–4 processes running the same sweep on one folder at once.

Every item correct, none lost, no exception in any process, and each item computed exactly
once, by one of the processes: every computation appends a line naming the item and the
computing process to one log file (opened with ``O_APPEND``, one write per line), and each item
must have exactly one line.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from audit import audit_steps, count, metrics_by_run
from reliability_steps import (
    HEAVY,
    ReliabilityPayload,
    assert_every_result,
    computations,
    computed_by,
    run_forked,
    sweep_all,
)

from assay import Experiment, explicit

ITEMS = list(range(30))


def writer(folder: Path, log: Path, start: float, reverse: bool, backend: str = "Cached") -> None:
    """Run the sweep once the common start time is reached, then check every result."""
    items = ITEMS[::-1] if reverse else ITEMS
    infra: dict[str, object] = {"backend": backend, "folder": folder}
    if backend != "Cached":
        infra.update({"max_jobs": 2, "progress": False})
    step = ReliabilityPayload(side_effects=str(log), delay=0.002, infra=infra)
    time.sleep(max(0.0, start - time.time()))
    sweep_all(step, items)
    assert_every_result(step, items)


def run_writers(tmp_path: Path, writers: int, backend: str = "Cached") -> dict[int, int]:
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    start = time.time() + 0.3  # lets every process be forked before any starts
    with ThreadPoolExecutor(writers) as pool:
        jobs = [partial(writer, folder, log, start, k % 2 == 1, backend) for k in range(writers)]
        statuses = list(pool.map(run_forked, jobs))
    count("concurrent-writer runs")
    assert statuses == [0] * writers, "a writer raised (traceback on stderr)"
    found = audit_steps(folder, ITEMS)
    count("items lost", len(ITEMS) - found.complete)
    count("wrong values returned", len(found.wrong))
    assert (found.complete, found.wrong) == (len(ITEMS), [])
    return computations(log)


@pytest.mark.parametrize("writers", [2, 3, 4])
def test_concurrent_writers_on_one_step_folder(tmp_path: Path, writers: int) -> None:
    """Each item is computed exactly once: by the one writer whose claim holds it.

    A writer whose claim names items an older live claim holds leaves them to that claim's
    writer and waits for their entries; one that claims items another writer finished
    meanwhile finds their entries and keeps them. A run in which one writer computed every
    item tested no contention: it is run again.
    """
    repeats = 4 if HEAVY else 1
    contended = 0
    for run in range(3 * repeats):
        counts = run_writers(tmp_path / f"run{run}", writers)
        assert set(counts) == set(ITEMS), "every item was computed by some process"
        extra = sum(counts.values()) - len(ITEMS)
        count(f"duplicate computations with {writers} writers", extra)
        count(f"items computed with {writers} writers", len(ITEMS))
        pids = computed_by(tmp_path / f"run{run}" / "computations.log")
        twice = {i: by for i, by in pids.items() if len(by) > 1}
        assert twice == {}, f"items computed more than once (by these pids): {twice}"
        assert counts == dict.fromkeys(ITEMS, 1)
        sharing = len(set().union(*pids.values()))
        count(f"writers that computed items (of {writers} per run)", sharing)
        contended += sharing > 1
        if contended == repeats:
            break
    assert contended == repeats, f"in {run + 1} runs, {contended} had writers share the items"


@pytest.mark.slow
def test_two_process_pool_sweeps_on_one_step_folder(tmp_path: Path) -> None:
    """Two drivers, each with a pool of two workers, run the same ``run_many`` at once."""
    counts = run_writers(tmp_path, 2, "ProcessPool")
    count("duplicate computations with 2 pool drivers", sum(counts.values()) - len(ITEMS))
    assert counts == dict.fromkeys(ITEMS, 1)


def _experiment(folder: Path, log: Path) -> Experiment:
    return Experiment(
        "concurrent",
        "reliability_steps:counted",
        explicit([{"i": i} for i in range(16)]),
        replicates=2,
        context={"side_effects": str(log)},
        folder=folder,
        progress=False,
    )


def driver(folder: Path, log: Path, start: float, clean: dict[str, object]) -> None:
    time.sleep(max(0.0, start - time.time()))
    results = _experiment(folder, log).run()
    assert metrics_by_run(results) == clean


def test_concurrent_experiment_drivers_on_one_folder(tmp_path: Path) -> None:
    """Two (or, heavy, three) drivers run the same experiment in one folder at once."""
    clean = metrics_by_run(_experiment(tmp_path / "clean", tmp_path / "clean.log").run())
    assert {status for status, _ in clean.values()} == {"success"}
    drivers = 3 if HEAVY else 2
    for repeat in range(3 if HEAVY else 1):
        folder, log = tmp_path / f"run{repeat}", tmp_path / f"computations{repeat}.log"
        start = time.time() + 0.3
        with ThreadPoolExecutor(drivers) as pool:
            jobs = [partial(driver, folder, log, start, clean)] * drivers
            statuses = list(pool.map(run_forked, jobs))
        count("concurrent-writer runs")
        assert statuses == [0] * drivers, "a driver raised (traceback on stderr)"
        counts = computations(log)
        extra = sum(counts.values()) - len(clean)
        count(f"duplicate computations with {drivers} experiment drivers", extra)
        # Every run computed exactly once: item i has one run per replicate.
        assert counts == dict.fromkeys(range(16), 2), counts
        assert metrics_by_run(_experiment(folder, log).run()) == clean
        assert computations(log) == counts  # the rerun read every run back
