"""Live metrics and early stopping: runs stream their curves, a pruner stops the poor ones."""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path

import pytest

from assay import Experiment, Results, grid, loguniform
from assay._median import MedianRule
from assay._search import search

TRAIN = "assay._demo:train"
POOL = {"backend": "ProcessPool", "max_jobs": 2}


class Recorder:
    """A pruner that never prunes and notes when each value reached the driver."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[int | None, float]]] = {}
        self.ended: set[str] = set()
        self._lock = threading.Lock()

    def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
        with self._lock:
            self.seen.setdefault(run_id, []).append((step, time.time()))

    def should_prune(self, run_id: str) -> bool:
        return False

    def finished(self, run_id: str) -> None:
        self.ended.add(run_id)


def _ended_at(results: Results) -> dict[str, float]:
    return {
        record.run_id: datetime.datetime.fromisoformat(record.ended_at).timestamp()
        for record in results.iter_records()
    }


@pytest.mark.slow
def test_live_metrics_reach_the_driver_from_a_process_pool_while_runs_go(tmp_path: Path) -> None:
    recorder = Recorder()
    space = grid(lr=[0.1, 0.2], delay=[0.05], epochs=[12])
    results = Experiment(
        "live", TRAIN, space, folder=tmp_path, progress=False, backend=POOL, pruner=recorder
    ).run()
    assert results.counts() == {"success": 2}
    ended = _ended_at(results)
    for row in results:
        points = recorder.seen[row.run_id]
        assert [step for step, _ in points] == list(range(12))  # every step, in order
        first_seen = points[0][1]
        assert first_seen < ended[row.run_id] - 0.2  # heard while the run was going
    assert recorder.ended == {row.run_id for row in results}


def test_an_inline_search_prunes_poor_trials_and_records_them_pruned(tmp_path: Path) -> None:
    space = search(30, metric="loss", pruner="median", lr=loguniform(1e-3, 0.9), seed=0)
    experiment = Experiment("tune", TRAIN, space, folder=tmp_path, progress=False)
    results = experiment.run()
    counts = results.counts()
    assert counts["pruned"] >= 5
    assert counts["success"] + counts["pruned"] == 30
    series = results.series("loss")
    for row in results.with_status("pruned"):
        steps = [point["step"] for point in series if point["run_id"] == row.run_id]
        assert steps == list(range(len(steps)))
        assert len(steps) < 20
        assert row.error is None
        assert row.metrics["loss"] > 0
    summary = experiment.last_summary
    assert summary is not None
    assert f"{counts['pruned']} pruned" in summary.line("tune")
    # a pruned run is a result: a rerun computes nothing, and the trials stay as they were
    again = Experiment("tune", TRAIN, space, folder=tmp_path, progress=False)
    assert again.run().counts() == counts
    assert again.last_summary is not None
    assert again.last_summary.executed == 0


def test_an_inline_search_with_a_pruner_is_reproducible(tmp_path: Path) -> None:
    space = search(15, metric="loss", pruner="median", lr=loguniform(1e-3, 0.9), seed=4)
    one = Experiment("tune", TRAIN, space, folder=tmp_path / "a", progress=False).run()
    two = Experiment("tune", TRAIN, space, folder=tmp_path / "b", progress=False).run()
    assert [(r.params, r.status, r.metrics) for r in one] == [
        (r.params, r.status, r.metrics) for r in two
    ]


@pytest.mark.slow
def test_a_search_on_a_process_pool_prunes_from_the_streams(tmp_path: Path) -> None:
    space = search(
        10, metric="loss", pruner="median", parallel=2, seed=0,
        lr=loguniform(1e-3, 0.9), delay=0.03, epochs=25,
    )  # fmt: skip
    results = Experiment("tune", TRAIN, space, folder=tmp_path, progress=False, backend=POOL).run()
    assert results.counts().get("pruned", 0) >= 1
    assert sum(results.counts().values()) == 10
    for row in results.with_status("pruned"):
        assert len([p for p in results.series("loss") if p["run_id"] == row.run_id]) < 25


@pytest.mark.slow
def test_a_grid_sweep_with_the_median_rule_stops_the_poor_runs(tmp_path: Path) -> None:
    # good learning rates first: once three runs ended, the slow ones are measured against them
    space = grid(lr=[0.5, 0.3, 0.2, 0.001, 0.003, 0.01], delay=[0.03], epochs=[25])
    results = Experiment(
        "g", TRAIN, space, folder=tmp_path, progress=False, backend=POOL,
        pruner=MedianRule("loss", n_startup_runs=3),
    ).run()  # fmt: skip
    status = {row.params["lr"]: row.status for row in results}
    assert [status[lr] for lr in (0.5, 0.3)] == ["success", "success"]
    assert sum(status[lr] == "pruned" for lr in (0.003, 0.01)) >= 1


def test_an_inline_grid_sweep_with_the_median_rule_decides_at_each_step(tmp_path: Path) -> None:
    space = grid(lr=[0.5, 0.3, 0.2, 0.001, 0.003, 0.01])
    rule = MedianRule("loss", n_startup_runs=3)
    results = Experiment("g", TRAIN, space, folder=tmp_path, progress=False, pruner=rule).run()
    status = {row.params["lr"]: row.status for row in results}
    assert status == {0.5: "success", 0.3: "success", 0.2: "success",
                      0.001: "pruned", 0.003: "pruned", 0.01: "pruned"}  # fmt: skip
    # inline, the decision comes at the step it is asked: each poor run stopped at step 0
    series = results.series("loss")
    for lr in (0.001, 0.003, 0.01):
        (row,) = [r for r in results if r.params["lr"] == lr]
        assert [p["step"] for p in series if p["run_id"] == row.run_id] == [0]


def test_a_run_ignoring_should_prune_is_never_stopped(tmp_path: Path) -> None:
    # estimate_pi records without steps and never asks: a pruner changes nothing for it
    results = Experiment(
        "pi", "assay._demo:estimate_pi", grid(n_samples=[10, 20, 30, 40, 50, 60]),
        folder=tmp_path, progress=False, pruner=MedianRule("abs_error", n_startup_runs=1),
    ).run()  # fmt: skip
    assert results.counts() == {"success": 6}


def test_bad_pruners_are_refused_naming_the_argument(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"pruner = 'median'; expected an assay\.MedianRule"):
        Experiment("g", TRAIN, grid(lr=[0.1]), folder=tmp_path, pruner="median")
    space = search(3, metric="loss", lr=loguniform(1e-3, 0.9))
    with pytest.raises(ValueError, match=r"a search takes its pruner as search\(..., pruner"):
        Experiment("g", TRAIN, space, folder=tmp_path, pruner=MedianRule("loss"))
