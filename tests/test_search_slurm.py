"""A search on the real Slurm cluster: trials as job arrays, live metrics across processes.

Each test submits a few short jobs under a job name of its own.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, grid
from tests._slurm import require_slurm_cluster
from tests.kit.modules import ops_module

optuna = pytest.importorskip("optuna")

from assay._search import search  # noqa: E402
from assay._study import JOURNAL  # noqa: E402

pytestmark = pytest.mark.slow

OPS = """
import time

from assay_ops import operation


@operation
def curve(params, capture):
    x = params["x"]
    for step in range(params.get("steps", 1)):
        capture.metric("loss", (x - 0.3) ** 2 + 1.0 / (step + 1), step=step)
        time.sleep(params.get("sleep", 0.0))
        if capture.should_prune():
            return
"""


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Write the operations' module where the driver and the jobs import it; return its name."""
    require_slurm_cluster("a search on Slurm")
    with ops_module(tmp_path, monkeypatch, "slurm_search_ops", OPS) as name:
        yield name


def _slurm(name: str, **more: Any) -> dict[str, Any]:
    return {"backend": "Slurm", "partition": "debug", "timeout_min": 10, "job_name": name, **more}


def test_a_search_runs_its_trials_as_job_arrays_and_resumes_from_the_cache(
    ops: str, tmp_path: Path
) -> None:
    from assay import uniform

    folder = tmp_path / "search"
    space = search(6, metric="loss", parallel=3, seed=1, x=uniform(0.0, 1.0))
    backend = _slurm(f"assay-search-{tmp_path.name}")
    results = Experiment("s", f"{ops}:curve", space, folder=folder, progress=False,
                         backend=backend).run()  # fmt: skip
    assert results.counts() == {"success": 6}
    assert all(row.job_id for row in results)  # each trial ran in a job
    assert len({row.job_id.split("_")[0] for row in results}) == 2  # two batches, two arrays
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / JOURNAL))
    )
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.n_trials == 6
    # the same search inline: the same trials, from the cache, nothing submitted
    again = Experiment("s", f"{ops}:curve", space, folder=folder, progress=False, backend=backend)
    assert [row.params for row in again.run()] == [row.params for row in results]
    assert again.last_summary is not None
    assert again.last_summary.executed == 0


class _Recorder:
    """A pruner that never prunes and notes when each value reached the driver."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.steps: dict[str, list[int | None]] = {}
        self._lock = threading.Lock()

    def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
        with self._lock:
            self.first.setdefault(run_id, time.time())
            self.steps.setdefault(run_id, []).append(step)

    def should_prune(self, run_id: str) -> bool:
        return False

    def finished(self, run_id: str) -> None:
        pass


def test_live_metrics_reach_the_driver_from_slurm_jobs_while_they_run(
    ops: str, tmp_path: Path
) -> None:
    recorder = _Recorder()
    space = grid(x=[0.1, 0.9], steps=[8], sleep=[0.25])
    results = Experiment(
        "live", f"{ops}:curve", space, folder=tmp_path / "live", progress=False,
        backend=_slurm(f"assay-live-{tmp_path.name}"), pruner=recorder,
    ).run()  # fmt: skip
    assert results.counts() == {"success": 2}
    for record in results.iter_records():
        ended = datetime.datetime.fromisoformat(record.ended_at).timestamp()
        assert recorder.steps[record.run_id] == list(range(8))
        assert recorder.first[record.run_id] < ended - 0.5  # heard while the job ran


def test_a_search_on_slurm_prunes_through_the_shared_folder(ops: str, tmp_path: Path) -> None:
    from assay import uniform

    # the median rule from the second batch on: a trial worse than the first batch's median
    # at its first step is stopped (the curves differ by (x - 0.3) ** 2 alone)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=4)
    space = search(
        8, metric="loss", pruner=pruner, parallel=4, seed=0,
        x=uniform(0.0, 1.0), steps=12, sleep=0.3,
    )  # fmt: skip
    results = Experiment(
        "prune", f"{ops}:curve", space, folder=tmp_path / "prune", progress=False,
        backend=_slurm(f"assay-prune-{tmp_path.name}"),
    ).run()  # fmt: skip
    rows = results.rows
    assert len(rows) == 8
    gap = sorted((row.params["x"] - 0.3) ** 2 for row in rows[:4])
    median = (gap[1] + gap[2]) / 2
    worse = {row.run_id for row in rows[4:] if (row.params["x"] - 0.3) ** 2 > median}
    assert worse  # the seed gives the second batch trials to stop
    assert {row.run_id for row in rows if row.status == "pruned"} == worse
    for row in results.with_status("pruned"):
        steps = [p["step"] for p in results.series("loss") if p["run_id"] == row.run_id]
        assert len(steps) < 12
