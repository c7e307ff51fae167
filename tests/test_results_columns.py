"""Columns of the flat results table, and the arguments of summaries, on odd but legal names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from assay._cli import main
from assay._index import ResultsIndex
from assay._results import Results
from assay._rows import Outcome, RunRow
from assay._runs import RunSpec

BOOKKEEPING = ["run_id", "replicate", "status", "duration", "error"]


@pytest.mark.parametrize("name", BOOKKEEPING)
def test_a_parameter_named_like_a_bookkeeping_column_keeps_its_value(name: str) -> None:
    row = RunRow("r0", {name: "mine", "n": 1}, 0, "success", {"acc": 0.5}, 0.25, None, "h")
    (flat,) = Results([row]).table()
    assert flat[f"param:{name}"] == "mine"
    expected = {"run_id": "r0", "replicate": 0, "status": "success", "duration": 0.25}
    assert {k: flat[k] for k in expected} == expected
    assert flat["error"] is None


def test_a_metric_named_run_id_keeps_the_run_id() -> None:
    row = RunRow("r0", {"n": 1}, 0, "success", {"run_id": 7.0}, 0.25, None, "h")
    (flat,) = Results([row]).table()
    assert flat["run_id"] == "r0"
    assert flat["metric:run_id"] == 7.0


def test_to_dataframe_keeps_a_parameter_named_duration() -> None:
    pytest.importorskip("pandas")
    rows = [
        RunRow(f"r{i}", {"duration": d}, 0, "success", {"acc": d / 10}, 0.01 * i, None, "h")
        for i, d in enumerate([10, 20])
    ]
    frame = Results(rows).to_dataframe()
    assert list(frame["param:duration"]) == [10, 20]
    assert list(frame["duration"]) == [0.0, 0.01]


def test_summary_by_a_single_name_groups_by_that_parameter() -> None:
    rows = [
        RunRow(f"r{n}{rep}", {"n_samples": n}, rep, "success", {"err": n + rep}, 0.1, None, "h")
        for n in (10, 100)
        for rep in (0, 1)
    ]
    results = Results(rows)
    assert results.summary("err", by="n_samples") == results.summary("err", by=["n_samples"])
    assert [row["n_samples"] for row in results.summary("err", by="n_samples")] == [10, 100]


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_results_json_is_strict_json_for_non_finite_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float
) -> None:
    specs = [RunSpec.of({"n": n}, 0) for n in (1, 2)]
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.store(
            Outcome(s.run_id, "success", {"loss": value}, 0.1, None, "h", None) for s in specs
        )

    def strict(text: str) -> object:
        def refuse(constant: str) -> object:
            raise ValueError(f"{constant} is not JSON")

        return json.loads(text, parse_constant=refuse)

    for extra in ([], ["--summary", "loss", "--by", "n"]):
        assert main(["results", str(tmp_path), "--json", *extra]) == 0
        data = strict(capsys.readouterr().out)
        assert isinstance(data, list)
        spelled = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        assert [row.get("loss", row.get("mean")) for row in data] == [spelled, spelled]
