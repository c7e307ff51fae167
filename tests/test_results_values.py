"""Results over odd but legal values: NaN and infinite metrics, parameters of mixed kinds."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay._cli import main
from assay._index import ResultsIndex
from assay._results import Results
from assay._rows import Outcome, RunRow
from assay._runs import RunSpec


def _rows(values: list[float], groups: int = 1) -> list[RunRow]:
    """Runs of one parameter ``g`` (``groups`` values, round robin) with metric ``loss``."""
    return [
        RunRow(f"r{i}", {"g": i % groups}, i // groups, "success", {"loss": v}, 0.1, None, "h")
        for i, v in enumerate(values)
    ]


def _same(got: float, want: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    return got == pytest.approx(want, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------- summary with non-finite values


def test_summary_skips_nan_values_as_pandas_does() -> None:
    (row,) = Results(_rows([1.0, math.nan, 3.0])).summary("loss", by=[])
    assert row["count"] == 2
    assert row["mean"] == 2.0
    assert row["std"] == pytest.approx(math.sqrt(2.0))


def test_summary_of_a_group_of_nan_values_has_count_zero() -> None:
    # a diverged point stays visible in the summary instead of vanishing or crashing it
    rows = _rows([1.0, math.nan, 2.0, math.nan], groups=2)
    summary = {row["g"]: row for row in Results(rows).summary("loss", by="g")}
    assert list(summary) == [0, 1]
    assert summary[0]["count"] == 2
    assert summary[1]["count"] == 0
    assert math.isnan(summary[1]["mean"])
    assert math.isnan(summary[1]["std"])


@pytest.mark.parametrize(
    ("values", "mean"),
    [
        ([math.inf, 1.0], math.inf),
        ([-math.inf, 1.0, 2.0], -math.inf),
        ([math.inf, -math.inf], None),
    ],
)
def test_summary_of_infinite_values_is_infinite_with_nan_std(
    values: list[float], mean: float | None
) -> None:
    (row,) = Results(_rows(values)).summary("loss", by=[])
    assert row["count"] == len(values)
    assert math.isnan(row["mean"]) if mean is None else row["mean"] == mean
    assert math.isnan(row["std"])


_VALUE = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(_VALUE, min_size=1, max_size=12), groups=st.integers(1, 3))
def test_summary_agrees_with_pandas_groupby_agg(values: list[float], groups: int) -> None:
    pandas = pytest.importorskip("pandas")
    rows = _rows(values, groups)
    frame = pandas.DataFrame({"g": [r.params["g"] for r in rows], "loss": values})
    with warnings.catch_warnings():  # pandas warns about inf - inf, and answers NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        want = frame.groupby("g", sort=False)["loss"].agg(["mean", "std", "count"])
    got = Results(rows).summary("loss", by="g")
    assert [row["g"] for row in got] == list(want.index)
    for row in got:
        expected = want.loc[row["g"]]
        assert row["count"] == expected["count"]
        assert _same(row["mean"], float(expected["mean"]))
        assert _same(row["std"], float(expected["std"]))


def test_cli_summary_of_a_metric_with_nan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = [RunSpec.of({"n": n}, rep) for n in (1, 2) for rep in (0, 1)]
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.store(
            Outcome(
                s.run_id,
                "success",
                {"loss": math.nan if s.params["n"] == 2 else 0.5},
                0.1,
                None,
                "h",
                None,
            )
            for s in specs
        )
    assert main(["results", str(tmp_path), "--summary", "loss", "--by", "n", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "n,mean,std,count"
    assert lines[1] == "1,0.5,0.0,2"
    assert lines[2] == "2,NaN,NaN,0"


# ---------------------------------------------------------------- plots over mixed parameters


def _plot_rows(xs: list[Any]) -> list[RunRow]:
    """Two replicates per value of ``x`` (``...`` for a run without ``x``), metric ``m``."""
    return [
        RunRow(f"r{i}{k}", {} if x is ... else {"x": x}, k, "success", {"m": i + k}, 0.1, None, "h")
        for i, x in enumerate(xs)
        for k in range(2)
    ]


@pytest.fixture
def mpl() -> None:
    pytest.importorskip("matplotlib")


def _ticks(figure: Any) -> list[str]:
    (axes,) = figure.axes
    return [label.get_text() for label in axes.get_xticklabels()]


@pytest.mark.parametrize(
    ("xs", "ticks"),
    [
        ([0.1, "auto"], ["0.1", "auto"]),  # a number and a string: categories
        ([[64, 64], [128]], ["[128]", "[64, 64]"]),  # list values: categories by their text
        ([{"a": 2}, {"a": 1}], ["{'a': 1}", "{'a': 2}"]),
        ([None, 0.001, 0.01], ["0.001", "0.01", "None"]),  # an explicit None is a value
    ],
)
def test_plot_draws_parameters_of_other_kinds_as_categories(
    tmp_path: Path, mpl: None, xs: list[Any], ticks: list[str]
) -> None:
    figure = Results(_plot_rows(xs)).plot("m", x="x", out=tmp_path / "p.png")
    assert (tmp_path / "p.png").is_file()
    assert _ticks(figure) == ticks
    assert figure.axes[0].get_xscale() == "linear"


def test_plot_draws_booleans_as_categories(mpl: None) -> None:
    # assay keeps True and 1 apart everywhere else (run ids, filters): the axis does too
    figure = Results(_plot_rows([True, False])).plot("m", x="x")
    assert _ticks(figure) == ["False", "True"]


def test_plot_refuses_runs_without_the_x_parameter(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = Results(_plot_rows([..., 1, 2]))
    with pytest.raises(ValueError, match=r"plot\(\): x = 'x'.* 2 runs .*r00.*have no such param"):
        results.plot("m", x="x", out=tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()
    # what the message advises works
    results.filter(x=lambda v: True).plot("m", x="x", out=tmp_path / "p.png")
    assert (tmp_path / "p.png").is_file()


def test_plot_keeps_a_numeric_axis_for_numbers(mpl: None) -> None:
    figure = Results(_plot_rows([1e-4, 1e-2, 1])).plot("m", x="x")
    (axes,) = figure.axes
    assert axes.get_xscale() == "log"  # more than two decades
    line = axes.get_lines()[0]
    assert list(line.get_xdata()) == [1e-4, 1e-2, 1]
    assert list(line.get_ydata()) == [0.5, 1.5, 2.5]


def test_plots_with_and_without_hue_go_to_different_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    specs = [RunSpec.of({"n": n, "opt": opt}, 0) for n in (1, 2) for opt in ("adam", "sgd")]
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.store(
            Outcome(s.run_id, "success", {"m": s.params["n"]}, 0.1, None, "h", None) for s in specs
        )
    # plot() saves nothing unless asked; `assay plot` writes to a file named by its arguments
    Results.load(tmp_path).plot("m", x="n", hue="opt")
    assert not (tmp_path / "plots").exists()
    assert main(["plot", str(tmp_path), "m", "--x", "n"]) == 0
    assert main(["plot", str(tmp_path), "m", "--x", "n", "--hue", "opt"]) == 0
    assert (tmp_path / "plots" / "m_by_n.png").is_file()
    assert (tmp_path / "plots" / "m_by_n_per_opt.png").is_file()
    assert capsys.readouterr().out.count("plot written to") == 2
