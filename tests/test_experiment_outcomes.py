"""What the driver writes into the index from each run's record: metrics, errors, statuses."""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assay import Experiment, Results, grid
from assay._index import ResultsIndex

OPS = """
import numpy as np
from assay_ops import operation


@operation
def kinds(params, capture):
    x = params["x"]
    capture.metric("int", x)
    capture.metric("float", x / 3)
    capture.metric("text", f"x={x}")
    capture.metric("flag", x % 2 == 0)
    capture.metric("f32", np.float32(x) / np.float32(7))
    capture.metric("i64", np.int64(x) * 10)
    capture.metric("np_bool", np.bool_(x > 1))
    capture.metric("nan", float("nan"))
    capture.metric("inf", float("-inf"))
    capture.metric("series", 0.5)
    capture.metric("series", x * 1.5)
    capture.metric("array", np.arange(3))  # not a scalar: left out of the index
    if x == 2:
        raise ValueError(f"x = {x} is refused")


@operation
def fine(params, capture):
    capture.metric("value", params["x"])
"""


@pytest.fixture
def module(write_module: Callable[..., Any]) -> Any:
    return write_module(OPS, "assay_test_outcomes")


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) else None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def test_index_rows_hold_the_last_scalar_of_every_metric_of_the_record(
    tmp_path: Path, module: Any
) -> None:
    folder = tmp_path / "exp"
    results = Experiment(
        "kinds", module.kinds, grid(x=[1, 2, 3]), replicates=2, folder=folder, progress=False
    ).run()
    assert results.counts() == {"success": 4, "failed": 2}
    records = {record.run_id: record for record in results.records()}
    with ResultsIndex(folder) as index:
        rows = index.rows()
    assert len(rows) == 6
    for row in rows:
        record = records[row.run_id]
        expected = {
            name: _scalar(values[-1])
            for name, values in record.metrics.items()
            if _scalar(values[-1]) is not None
        }
        assert set(row.metrics) == set(expected)
        assert "array" not in row.metrics
        for name, value in expected.items():
            assert _same(row.metrics[name], value), name
        assert row.status == record.status
        assert row.duration == record.duration
        assert row.code_hash == record.code_hash == module.kinds.code_hash
        if record.status == "failed":
            assert row.error == "ValueError: x = 2 is refused"
        else:
            assert row.error is None


def test_the_index_of_a_fresh_sweep_equals_the_index_rebuilt_from_the_cache(
    tmp_path: Path, module: Any
) -> None:
    folder = tmp_path / "exp"

    def experiment() -> Experiment:
        return Experiment("kinds", module.kinds, grid(x=[1, 2, 3]), folder=folder, progress=False)

    experiment().run()
    with ResultsIndex(folder) as index:
        fresh = [(r.run_id, r.status, json.dumps(r.metrics), r.error) for r in index.rows()]
    (folder / "index.sqlite").unlink()
    for leftover in folder.glob("index.sqlite-*"):
        leftover.unlink()
    again = experiment()
    again.run()
    assert again.last_summary is not None
    assert again.last_summary.cached == 3  # read back from the cache, not run again
    with ResultsIndex(folder) as index:
        rebuilt = [(r.run_id, r.status, json.dumps(r.metrics), r.error) for r in index.rows()]
    assert rebuilt == fresh


def test_an_operation_that_no_longer_imports_fails_every_run_with_the_same_error(
    tmp_path: Path, module: Any
) -> None:
    experiment = Experiment(
        "gone", module.fine, grid(x=list(range(5))), replicates=3, folder=tmp_path / "exp",
        progress=False,
    )  # fmt: skip
    Path(module.__file__).unlink()  # the workers can no longer import it
    sys.modules.pop(module.__name__)
    importlib.invalidate_caches()
    results = experiment.run()
    assert results.counts() == {"failed": 15}
    errors = {row.error for row in results.rows}
    assert len(errors) == 1
    assert next(iter(errors)).startswith("ModuleNotFoundError: ")
    # the error is described afresh for each run: its traceback does not grow along the sweep
    texts = ResultsIndex(tmp_path / "exp").records([row.run_id for row in results.rows])
    tracebacks = {json.loads(text)["assay.worker-error"]["traceback"] for text in texts if text}
    assert len(tracebacks) == 1


def test_results_load_reads_what_the_driver_wrote(tmp_path: Path, module: Any) -> None:
    folder = tmp_path / "exp"
    Experiment("fine", module.fine, grid(x=[4, 5]), folder=folder, progress=False).run()
    loaded = Results.load(folder)
    assert sorted(row.metrics["value"] for row in loaded.rows) == [4, 5]


def test_records_computed_in_process_are_taken_once_and_only_for_their_text(
    tmp_path: Path, module: Any
) -> None:
    import pickle

    from assay._worker import ExperimentRun

    step = ExperimentRun(operation=module.fine.ref, seed=0)
    spec = {"run_id": "r1", "params": {"x": 2}, "replicate": 0, "runs": None}
    text = step.run(spec)  # no cache: computed here
    assert pickle.loads(pickle.dumps(step)).take_record("r1", text) is None  # not carried
    assert step.take_record("r1", text + " ") is None  # another text: parsed, not taken
    text = step.run(spec)
    record = step.take_record("r1", text)
    assert record is not None
    assert record.metric("value") == 2
    assert step.take_record("r1", text) is None  # taken once
    step.run(spec)
    step.drop_records()
    assert step.take_record("r1", text) is None
