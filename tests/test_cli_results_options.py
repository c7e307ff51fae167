"""Options of `assay results` that only make sense together."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from assay._cli import main
from assay._index import ResultsIndex
from assay._rows import Outcome
from assay._runs import RunSpec


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    specs = [RunSpec.of({"n": n}, rep) for n in (1, 2) for rep in (0, 1)]
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.store(
            Outcome(
                s.run_id, "success", {"loss": s.params["n"] + s.replicate}, 0.1, None, "h", None
            )
            for s in specs
        )
    return tmp_path


def test_by_without_summary_is_a_usage_error(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["results", str(folder), "--by", "n", "--csv"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("assay: error: ")
    assert "--by n needs --summary METRIC" in captured.err


def test_by_with_summary_groups(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", str(folder), "--summary", "loss", "--by", "n", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    std = statistics.stdev([0, 1])  # replicates 0 and 1 of each point differ by one
    assert lines == ["n,mean,std,count", f"1,1.5,{std},2", f"2,2.5,{std},2"]
