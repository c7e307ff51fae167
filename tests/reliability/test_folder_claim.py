"""Two different experiments started together on one folder: exactly one claims it.

Drivers of a Slurm array that share ``--folder`` start within milliseconds of each other. The
check of the folder's stored identity and the writing of it are one SQLite write transaction,
so the second driver sees the first one's identity and stops before planning or writing
anything; the index then holds the values of one experiment only.
"""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path
from typing import Any

from audit import count, metrics_by_run

from assay import Experiment, Results, grid
from assay._identity import FolderConflictError

REPEATS = 6


def _experiment(folder: Path, seed: int) -> Experiment:
    # same params, different root seeds: the run ids are the same, the values are not
    return Experiment(
        "race",
        "reliability_steps:noisy",
        grid(n=list(range(10, 30)), sleep=[0.0]),
        replicates=2,
        seed=seed,
        folder=folder,
        progress=False,
    )


def _driver(folder: str, seed: int, start: Any, outcomes: Any) -> None:
    start.wait()
    try:
        _experiment(Path(folder), seed).run()
        outcomes.put((seed, "ok", ""))
    except FolderConflictError as error:
        outcomes.put((seed, "conflict", str(error)))
    except BaseException:
        outcomes.put((seed, "error", traceback.format_exc()))


def test_two_experiments_started_together_on_one_folder_one_proceeds(tmp_path: Path) -> None:
    clean = {seed: metrics_by_run(_experiment(tmp_path / f"alone{seed}", seed).run())
             for seed in (3, 4)}  # fmt: skip
    assert clean[3] != clean[4]
    context = multiprocessing.get_context("fork")
    for attempt in range(REPEATS):
        folder = tmp_path / f"shared{attempt}"
        start, outcomes = context.Barrier(2), context.Queue()
        drivers = [
            context.Process(target=_driver, args=(str(folder), seed, start, outcomes))
            for seed in (3, 4)
        ]
        for driver in drivers:
            driver.start()
        found = sorted(outcomes.get(timeout=120) for _ in drivers)
        for driver in drivers:
            driver.join(timeout=60)
        count("concurrent drivers", 2)
        assert [kind for _, kind, _ in found if kind == "error"] == [], found
        winners = [seed for seed, kind, _ in found if kind == "ok"]
        losers = [(seed, message) for seed, kind, message in found if kind == "conflict"]
        assert len(winners) == 1, found
        assert len(losers) == 1, found
        (winner,), ((_, message),) = winners, losers
        assert f"seed = {winner}" in message
        assert str(folder) in message
        stored = metrics_by_run(Results.load(folder))
        wrong = [rid for rid, value in stored.items() if value != clean[winner][rid]]
        count("wrong values returned", len(wrong))
        assert (stored.keys(), wrong) == (clean[winner].keys(), [])
