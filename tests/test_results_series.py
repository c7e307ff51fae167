"""Results.series: the whole series of a metric per run, read back from the runs' records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, Results, grid

OPS = """
from assay_ops import operation
from assay_scope import param_scope


@operation
def train(params, seeds, capture):
    lr = param_scope.lr | 0.1
    for step in (0, 2, 4):
        capture.metric("loss", 1.0 / (step + 1) + lr, step=step)
    capture.metric("loss", -1.0)  # a last value without a step
    capture.metric("final", 0.5)
"""


@pytest.fixture
def results(write_module: Callable[..., Any], tmp_path: Path) -> Results:
    ops = write_module(OPS, "assay_series_ops")
    experiment = Experiment(
        "train", ops.train, folder=tmp_path / "exp", params=grid(lr=[0.1, 0.2]), progress=False
    )
    return experiment.run()


def test_series_gives_every_value_of_every_run_with_its_step_and_params(results: Results) -> None:
    rows = results.series("loss")
    run_ids = [row.run_id for row in results]
    assert [(row["run_id"], row["step"]) for row in rows] == [
        (run_id, step) for run_id in run_ids for step in (0, 2, 4, None)
    ]
    by_lr: dict[float, list[float]] = {row["lr"]: [] for row in rows}
    for row in rows:
        by_lr[row["lr"]].append(row["value"])
    assert by_lr[0.2] == pytest.approx([1.2, 1 / 3 + 0.2, 0.4, -1.0])
    assert set(rows[0]) == {"run_id", "step", "value", "lr"}
    assert results.folder is not None
    assert Results.load(results.folder).series("loss") == rows  # read back from the folder


def test_series_of_a_selection_has_its_runs_only(results: Results) -> None:
    rows = results.filter(lr=0.1).series("final")
    assert [(row["lr"], row["step"], row["value"]) for row in rows] == [(0.1, None, 0.5)]


def test_series_of_a_metric_no_run_recorded_names_those_they_did(results: Results) -> None:
    with pytest.raises(KeyError, match=r"no run recorded metric 'acc'.*\['final', 'loss'\]"):
        results.series("acc")
