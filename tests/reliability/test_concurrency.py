"""Concurrent writers: 2–4 processes running the same sweep on one folder at once.

Every item correct, none lost, no exception in any process, and each item computed exactly
once, by one of the processes (counted with one side-effect file per computation, named by
the item and the computing process).
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
    ItemFailed,
    ReliabilityPayload,
    computations,
    expected,
    fails,
    run_forked,
    same,
    sweep_all,
)

from assay import Experiment, explicit

ITEMS = list(range(30))


def writer(folder: Path, side: Path, start: float, reverse: bool) -> None:
    """Run the sweep once the common start time is reached, then check every result."""
    items = ITEMS[::-1] if reverse else ITEMS
    step = ReliabilityPayload(
        side_effects=str(side), delay=0.002, infra={"backend": "Cached", "folder": folder}
    )
    time.sleep(max(0.0, start - time.time()))
    sweep_all(step, items)
    for i in items:
        try:
            value = step.run(i)
        except ItemFailed:
            assert fails(i), f"item {i} raised"
        else:
            assert not fails(i), f"item {i} returned {value!r:.60}"
            assert same(value, expected(i)), f"item {i}: wrong value {value!r:.60}"


def run_writers(tmp_path: Path, writers: int) -> dict[int, int]:
    folder, side = tmp_path / "cache", tmp_path / "side"
    side.mkdir(parents=True)
    start = time.time() + 0.3  # lets every process be forked before any starts
    with ThreadPoolExecutor(writers) as pool:
        jobs = [partial(writer, folder, side, start, k % 2 == 1) for k in range(writers)]
        statuses = list(pool.map(run_forked, jobs))
    count("concurrent-writer runs")
    assert statuses == [0] * writers, "a writer raised (traceback on stderr)"
    found = audit_steps(folder, ITEMS)
    count("items lost", len(ITEMS) - found.complete)
    count("wrong values returned", len(found.wrong))
    assert (found.complete, found.wrong) == (len(ITEMS), [])
    return computations(side)


def computed_by(side: Path) -> dict[int, list[int]]:
    """The pids of the processes that computed each item, one per computation."""
    pids: dict[int, list[int]] = {}
    for path in side.iterdir():
        item, pid, _ = path.name.split(".")
        pids.setdefault(int(item), []).append(int(pid))
    return pids


@pytest.mark.parametrize("writers", [2, 3, 4])
def test_concurrent_writers_on_one_step_folder(tmp_path: Path, writers: int) -> None:
    """Each item is computed exactly once: by the one writer that held its lock.

    A writer that finds an item locked by another leaves it to that writer, and one that
    takes a free lock finds the entry another writer finished meanwhile, and keeps it. A run
    in which one writer computed every item tested no contention: it is run again.
    """
    repeats = 4 if HEAVY else 1
    contended = 0
    for run in range(3 * repeats):
        counts = run_writers(tmp_path / f"run{run}", writers)
        assert set(counts) == set(ITEMS), "every item was computed by some process"
        extra = sum(counts.values()) - len(ITEMS)
        count(f"duplicate computations with {writers} writers", extra)
        count(f"items computed with {writers} writers", len(ITEMS))
        pids = computed_by(tmp_path / f"run{run}" / "side")
        twice = {i: by for i, by in pids.items() if len(by) > 1}
        assert twice == {}, f"items computed more than once (by these pids): {twice}"
        assert counts == dict.fromkeys(ITEMS, 1)
        sharing = len(set().union(*pids.values()))
        count(f"writers that computed items (of {writers} per run)", sharing)
        contended += sharing > 1
        if contended == repeats:
            break
    assert contended == repeats, f"in {run + 1} runs, {contended} had writers share the items"


def _experiment(folder: Path, side: Path) -> Experiment:
    return Experiment(
        "concurrent",
        "reliability_steps:counted",
        explicit([{"i": i} for i in range(16)]),
        replicates=2,
        context={"side_effects": str(side)},
        folder=folder,
        progress=False,
    )


def driver(folder: Path, side: Path, start: float, clean: dict[str, object]) -> None:
    time.sleep(max(0.0, start - time.time()))
    results = _experiment(folder, side).run()
    assert metrics_by_run(results) == clean


def test_concurrent_experiment_drivers_on_one_folder(tmp_path: Path) -> None:
    """Two (or, heavy, three) drivers run the same experiment in one folder at once."""
    (tmp_path / "clean-side").mkdir()
    clean = metrics_by_run(_experiment(tmp_path / "clean", tmp_path / "clean-side").run())
    assert {status for status, _ in clean.values()} == {"success"}
    drivers = 3 if HEAVY else 2
    for repeat in range(3 if HEAVY else 1):
        folder, side = tmp_path / f"run{repeat}", tmp_path / f"side{repeat}"
        side.mkdir()
        start = time.time() + 0.3
        with ThreadPoolExecutor(drivers) as pool:
            jobs = [partial(driver, folder, side, start, clean)] * drivers
            statuses = list(pool.map(run_forked, jobs))
        count("concurrent-writer runs")
        assert statuses == [0] * drivers, "a driver raised (traceback on stderr)"
        counts = computations(side)
        extra = sum(counts.values()) - len(clean)
        count(f"duplicate computations with {drivers} experiment drivers", extra)
        # Every run computed exactly once: item i has one run per replicate.
        assert counts == dict.fromkeys(range(16), 2), counts
        assert metrics_by_run(_experiment(folder, side).run()) == clean
