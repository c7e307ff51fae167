"""What the driver writes into the index from each run's record: metrics, errors, statuses."""

from __future__ import annotations

import datetime
import importlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_ops import RunRecord, SeedBundle

from assay import Experiment, Results, grid, reproduce
from assay._index import ResultsIndex
from assay._outcomes import _outcome
from assay._rows import Outcome, job_text
from assay._runs import RunSpec

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
    (error,) = {row.error for row in results.rows}
    assert error is not None
    assert error.startswith("ModuleNotFoundError: ")
    # the error is described afresh for each run: its traceback does not grow along the sweep
    texts = ResultsIndex(tmp_path / "exp").records([row.run_id for row in results.rows])
    tracebacks = {json.loads(text)["error"]["traceback"] for text in texts if text}
    assert len(tracebacks) == 1


def test_results_load_reads_what_the_driver_wrote(tmp_path: Path, module: Any) -> None:
    folder = tmp_path / "exp"
    Experiment("fine", module.fine, grid(x=[4, 5]), folder=folder, progress=False).run()
    loaded = Results.load(folder)
    assert sorted(row.metrics["value"] for row in loaded.rows) == [4, 5]


# ---------------------------------------------------------------- runs that cannot start


def _break(module: Any) -> None:
    """Make ``module`` raise at import from now on, here and in the workers started next."""
    Path(module.__file__).write_text("raise RuntimeError('this module is broken')\n")
    sys.modules.pop(module.__name__)
    importlib.invalidate_caches()


@pytest.mark.parametrize(
    "backend",
    [None, "ThreadPool", pytest.param("ProcessPool", marks=pytest.mark.slow)],
)
def test_a_run_whose_operation_cannot_be_imported_gets_a_failed_record_on_every_backend(
    tmp_path: Path, module: Any, backend: str | None
) -> None:
    def experiment(folder: str) -> Experiment:
        infra = None if backend is None else {"backend": backend, "max_jobs": 2}
        return Experiment(
            "fine", module.fine, grid(x=[1, 2]), replicates=2, seed=7, backend=infra,
            folder=tmp_path / folder, progress=False,
        )  # fmt: skip

    fine = {record.run_id: record for record in experiment("ok").run().records()}
    broken = experiment("broken")
    _break(module)
    results = broken.run()
    assert results.counts() == {"failed": 4}
    records = results.records()
    assert [record.run_id for record in records] == [row.run_id for row in results.rows]
    for record, row in zip(records, results.rows, strict=True):
        assert isinstance(record, RunRecord)
        assert record.status == "failed"
        assert record.error is not None
        assert record.error.type == "builtins.ImportError"
        assert f"module {module.__name__!r} was found but importing it failed" in (
            record.error.message
        )
        assert "RuntimeError: this module is broken" in record.error.message
        assert "Traceback" in record.error.traceback
        assert row.error == f"ImportError: {record.error.message}"
        # the record a run gets, as far as the worker knows it: no code, no metrics
        ran = fine[record.run_id]
        assert (record.ref, record.params, record.seed) == (ran.ref, ran.params, ran.seed)
        assert record.replicate == row.replicate
        assert record.code_hash == ""
        assert record.metrics == {}
        assert record.runtime["operation_started"] is False
        assert record.runtime["backend"] == ran.runtime["backend"]
        assert record.started_at <= record.ended_at


def test_reproduce_refuses_a_run_whose_operation_could_not_start(
    tmp_path: Path, module: Any
) -> None:
    experiment = Experiment("fine", module.fine, grid(x=[1]), folder=tmp_path / "exp",
                            progress=False)  # fmt: skip
    _break(module)
    (row,) = experiment.run().rows
    with pytest.raises(ValueError, match="failed before its operation started \\(ImportError: "):
        reproduce(tmp_path / "exp", row.run_id)


# What a worker of an older version returned when the operation could not start (as
# json.dumps wrote it); cache entries and index rows written then still hold such texts.
LEGACY = (
    '{"assay.worker-error": {"type": "builtins.ModuleNotFoundError", "message": '
    '"No module named \'gone\'", "traceback": "Traceback (most recent call last):\\n", '
    '"ref": "gone:train", "seed": 3, "run_id": "RUN_ID", "started_at": '
    '"2024-05-01T10:00:00+00:00", "ended_at": "2024-05-01T10:00:01.500000+00:00", '
    '"job": "4242_1", "logs": {"stdout": "/logs/4242_1.out", "stderr": "/logs/4242_1.err"}}}'
)


def test_an_older_workers_error_read_from_the_cache_becomes_a_failed_record() -> None:
    spec = RunSpec.of({"lr": 0.5}, 1)
    outcome, ended = _outcome(spec, LEGACY.replace("RUN_ID", spec.run_id))
    assert (outcome.run_id, outcome.status) == (spec.run_id, "failed")
    assert outcome.error == "ModuleNotFoundError: No module named 'gone'"
    assert outcome.job == job_text("4242_1", "/logs/4242_1.out", "/logs/4242_1.err")
    assert ended == datetime.datetime(2024, 5, 1, 10, 0, 1, 500000, datetime.timezone.utc)
    assert outcome.record is not None
    record = RunRecord.from_json(outcome.record)  # the index keeps the record, not the marker
    assert (record.status, record.run_id, record.ref) == ("failed", spec.run_id, "gone:train")
    assert record.params == {"lr": 0.5}
    assert record.seed == SeedBundle(3, {"lr": 0.5}, replicate=1).key
    assert record.duration == 1.5
    assert record.error is not None
    assert record.error.type == "builtins.ModuleNotFoundError"
    assert record.runtime["job"] == "4242_1"


def test_an_older_workers_error_in_the_index_reads_as_a_failed_record(
    tmp_path: Path, module: Any
) -> None:
    folder = tmp_path / "exp"
    first, second = (
        Experiment("fine", module.fine, grid(x=[1, 2]), folder=folder, progress=False).run().rows
    )
    legacy = LEGACY.replace("RUN_ID", first.run_id)
    message = "ModuleNotFoundError: No module named 'gone'"
    with ResultsIndex(folder) as index:  # the row an older version wrote
        index.store([Outcome(first.run_id, "failed", {}, None, message, None, legacy)])
    records = Results.load(folder).records()
    assert [(r.run_id, r.status) for r in records] == [
        (first.run_id, "failed"),
        (second.run_id, "success"),
    ]
    assert records[0].params == first.params
    assert records[0].error is not None
    assert records[0].error.message == "No module named 'gone'"
    with pytest.raises(ValueError, match="failed before its operation started"):
        reproduce(folder, first.run_id)
