"""Faults of an operation seen from an experiment: a sweep records them and goes on."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, grid
from assay._worker import Runner

OPS = """
import sys

from assay_ops import operation


@operation
def exits(params, capture):
    capture.metric("x", params["x"])
    if params["x"] == 1:
        sys.exit(3)


@operation
def stops(params):
    raise KeyboardInterrupt


@operation
def returns(params, capture):
    capture.metric("accuracy", 0.5)
    if params["x"] == 2:
        return [params["x"]]  # not a mapping: refused
    return {"accuracy": params["x"] / 10, "squared": params["x"] ** 2}


@operation
def freezes(params, capture):
    from assay_scope import param_scope

    capture.metric("extra", param_scope().get("extra_leak_test", -1))
    param_scope.frozen()
"""


@pytest.fixture
def module(write_module: Callable[..., Any]) -> Any:
    return write_module(OPS, "assay_test_faults")


# ---------------------------------------------------------------- SystemExit


def test_a_run_calling_sys_exit_is_recorded_as_failed_and_the_sweep_goes_on(
    tmp_path: Path, module: Any
) -> None:
    folder = tmp_path / "exp"
    results = Experiment(
        "exits", module.exits, grid(x=[0, 1, 2]), folder=folder, progress=False
    ).run()
    assert results.counts() == {"success": 2, "failed": 1}
    (failed,) = results.failed().rows
    assert failed.params == {"x": 1}
    assert failed.error is not None
    assert failed.error.startswith("SystemExit: ")
    assert "code 3" in failed.error
    (record,) = results.failed().records()
    assert record.metrics == {"x": [1]}  # captured before the exit
    # the failed run is kept: running again skips it unless asked to retry
    again = Experiment("exits", module.exits, grid(x=[0, 1, 2]), folder=folder, progress=False)
    again.run()
    assert again.last_summary is not None
    assert (again.last_summary.skipped, again.last_summary.executed) == (3, 0)


def test_an_operation_module_exiting_at_import_fails_every_run_of_the_sweep(
    tmp_path: Path, module: Any
) -> None:
    experiment = Experiment(
        "exits", module.exits, grid(x=[0, 2]), replicates=2, folder=tmp_path / "exp",
        progress=False,
    )  # fmt: skip
    # a script turned module that parses its command line at import: argparse exits with 2
    Path(module.__file__).write_text("import sys\nsys.exit(2)\n")
    sys.modules.pop(module.__name__)
    importlib.invalidate_caches()
    results = experiment.run()
    assert results.counts() == {"failed": 4}
    (error,) = {row.error for row in results.rows}
    assert error.startswith("ImportError: importing module")
    assert "exited (SystemExit: 2)" in error


def test_ctrl_c_in_an_operation_still_stops_the_runner(module: Any) -> None:
    runner = Runner(module.stops.ref, 0, {}, {})
    with pytest.raises(KeyboardInterrupt):
        runner.run({"run_id": "r1", "params": {}, "replicate": 0})


def test_ctrl_c_in_an_operation_still_stops_the_sweep(tmp_path: Path, module: Any) -> None:
    experiment = Experiment(
        "stops", module.stops, grid(x=[0, 1]), folder=tmp_path / "exp", progress=False
    )
    with pytest.raises(KeyboardInterrupt):
        experiment.run()


# ---------------------------------------------------------------- returned metrics


def test_metrics_returned_by_the_operation_reach_the_results_of_a_sweep(
    tmp_path: Path, module: Any
) -> None:
    results = Experiment(
        "returns", module.returns, grid(x=[1, 2, 3]), folder=tmp_path / "exp", progress=False
    ).run()
    assert results.counts() == {"success": 2, "failed": 1}
    rows = {row.params["x"]: row for row in results.rows}
    for x in (1, 3):
        assert rows[x].metrics == {"accuracy": x / 10, "squared": x**2}  # the last values
    assert rows[2].error is not None
    assert rows[2].error.startswith("TypeError: operation 'returns' returned a list")
    summary = {row["x"]: row for row in results.summary("squared", by="x")}
    assert summary[3]["mean"] == 9


# ---------------------------------------------------------------- param_scope.frozen() in a run


def test_a_run_freezing_its_params_does_not_leak_them_into_later_runs_of_a_sweep(
    tmp_path: Path, module: Any
) -> None:
    # keys of this test only, so that a regression could not reach other tests
    params = [{"leak_test_n": 1, "extra_leak_test": 5}, {"leak_test_n": 2}, {"leak_test_n": 3}]
    results = Experiment(
        "freezes", module.freezes, params, folder=tmp_path / "exp", progress=False
    ).run()
    seen = {row.params["leak_test_n"]: row.metrics["extra"] for row in results.rows}
    assert seen == {1: 5, 2: -1, 3: -1}
