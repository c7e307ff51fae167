"""Results: tables, filters, summaries, DataFrames and plots over the index."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay._index import ResultsIndex
from assay._results import Results
from assay._rows import Outcome, RunRow
from assay._runs import plan
from assay._space import grid


def _make(folder: Path, values: dict[tuple[int, str, int], float], fail: int = 0) -> Results:
    """An index of grid(n=[10, 100, 1000], method=[a, b]) × 3 replicates with metric ``err``."""
    specs = plan(grid(n=[10, 100, 1000], method=["a", "b"]), replicates=3, seed=0)
    with ResultsIndex(folder) as index:
        index.plan(specs)
        outcomes = []
        for i, s in enumerate(specs):
            failed = i < fail
            outcomes.append(
                Outcome(
                    s.run_id,
                    "failed" if failed else "success",
                    {}
                    if failed
                    else {"err": values[(s.params["n"], s.params["method"], s.replicate)]},
                    0.01,
                    "ValueError: boom" if failed else None,
                    "h",
                    None,
                )
            )
        index.store(outcomes)
    return Results.load(folder)


def _values(seed: int = 0) -> dict[tuple[int, str, int], float]:
    import random

    rng = random.Random(seed)
    return {(n, m, r): rng.random() / n for n in (10, 100, 1000) for m in "ab" for r in range(3)}


def test_load_and_basics(tmp_path: Path) -> None:
    results = _make(tmp_path, _values(), fail=2)
    assert len(results) == 18
    assert results.counts() == {"success": 16, "failed": 2}
    assert results.param_names == ["n", "method"]
    assert results.metric_names == ["err"]
    assert "failed=2" in repr(results)
    failed = results.failed()
    assert len(failed) == 2
    assert all(row.error == "ValueError: boom" for row in failed)


def test_filter_by_value_and_predicate(tmp_path: Path) -> None:
    results = _make(tmp_path, _values())
    assert {row.params["n"] for row in results.filter(n=100)} == {100}
    assert len(results.filter(n=100.0, method="a")) == 3  # == comparison: 100 matches 100.0
    assert {row.params["n"] for row in results.filter(n=lambda n: n >= 100)} == {100, 1000}
    assert len(results.filter(method="zzz")) == 0
    with pytest.raises(KeyError, match=r"no parameter 'm'.*'method', 'n'"):
        results.filter(m="a")


def test_summary_over_replicates_matches_statistics(tmp_path: Path) -> None:
    values = _values(3)
    summary = _make(tmp_path, values).summary("err")
    assert len(summary) == 6
    for row in summary:
        reps = [values[(row["n"], row["method"], r)] for r in range(3)]
        assert row["mean"] == pytest.approx(statistics.fmean(reps))
        assert row["std"] == pytest.approx(statistics.stdev(reps))
        assert row["count"] == 3


def test_summary_by_one_parameter_and_skips_failed(tmp_path: Path) -> None:
    values = _values(4)
    results = _make(tmp_path, values, fail=1)  # the first run (n=10, a, rep 0) failed
    summary = {row["n"]: row for row in results.summary("err", by=["n"])}
    assert list(summary) == [10, 100, 1000]
    first = [values[(10, m, r)] for m in "ab" for r in range(3)][1:]
    assert summary[10]["count"] == 5
    assert summary[10]["mean"] == pytest.approx(statistics.fmean(first))
    assert set(summary[10]) == {"n", "mean", "std", "count"}


def test_summary_of_a_single_run_has_nan_std(tmp_path: Path) -> None:
    results = _make(tmp_path, _values()).filter(n=10, method="a")
    one = Results([next(iter(results))])
    assert math.isnan(one.summary("err")[0]["std"])


def test_summary_errors_name_the_metric_or_parameter(tmp_path: Path) -> None:
    results = _make(tmp_path, _values())
    with pytest.raises(KeyError, match=r"no metric 'loss'.*'err'"):
        results.summary("loss")
    with pytest.raises(KeyError, match="by = 'lr' is not a parameter"):
        results.summary("err", by=["lr"])


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=6))
def test_summary_mean_and_std_property(values: list[float]) -> None:
    from assay._rows import RunRow

    rows = [
        RunRow(f"r{i}", {"a": 1}, i, "success", {"m": v}, 0.0, None, "h")
        for i, v in enumerate(values)
    ]
    (row,) = Results(rows).summary("m")
    assert row["mean"] == pytest.approx(statistics.fmean(values), abs=1e-6)
    assert row["std"] == pytest.approx(statistics.stdev(values), abs=1e-6)
    assert row["count"] == len(values)


def test_table_has_one_row_per_run_and_renames_clashing_metrics() -> None:
    from assay._rows import RunRow

    rows = [RunRow("r0", {"n": 1}, 0, "success", {"n": 2.0, "acc": 0.5}, 0.1, None, "h")]
    (flat,) = Results(rows).table()
    assert flat == {
        "run_id": "r0",
        "n": 1,
        "metric:n": 2.0,
        "acc": 0.5,
        "replicate": 0,
        "status": "success",
        "duration": 0.1,
        "error": None,
    }


def test_to_dataframe_one_row_per_run(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    values = _values()
    results = _make(tmp_path, values, fail=1)
    frame = results.to_dataframe()
    assert len(frame) == 18
    assert {"run_id", "n", "method", "replicate", "status", "err", "duration"} <= set(frame.columns)
    row = frame.iloc[5]
    assert row["err"] == values[(int(row["n"]), row["method"], int(row["replicate"]))]
    assert frame.iloc[0]["status"] == "failed"


def test_to_dataframe_without_pandas_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError, match=r"pip install 'assay\[pandas\]'"):
        Results([]).to_dataframe()


def test_plot_returns_the_figure_and_writes_no_file_unless_asked(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    results = _make(tmp_path, _values())
    before = sorted(tmp_path.rglob("*"))
    figure = results.plot("err", x="n", hue="method")
    assert isinstance(figure, Figure)
    assert sorted(tmp_path.rglob("*")) == before  # nothing saved without out=
    (axes,) = figure.axes
    assert [line.get_label() for line in axes.get_lines()] == ["a", "b"]
    assert axes.get_xlabel() == "n"
    assert axes.get_ylabel() == "err"
    assert axes.get_xscale() == "linear"  # 10 to 1000 is two decades, not more
    assert axes.get_yscale() == "linear"
    # the default title names what is plotted and how many runs (no experiment name here)
    assert axes.get_title() == "err vs n, per method (18 runs)"
    out = tmp_path / "figures" / "custom.png"  # its folder is made
    assert isinstance(results.plot("err", x="n", out=out), Figure)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError, match="no metric 'nope'"):
        results.plot("nope", x="n")
    with pytest.raises(KeyError, match=r"plot\(\): x = 'size' is not a parameter"):
        results.plot("err", x="size")
    with pytest.raises(KeyError, match=r"plot\(\): hue = 'replicate' is not a parameter"):
        results.plot("err", x="n", hue="replicate")


def test_plot_draws_log_axes_and_the_title_asked_for(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = _make(tmp_path, _values())
    (axes,) = results.plot("err", x="n", logx=True, logy=True, title="error by size").axes
    assert (axes.get_xscale(), axes.get_yscale()) == ("log", "log")
    assert axes.get_title() == "error by size"
    (axes,) = results.plot("err", x="n", logy=True, title="").axes
    assert (axes.get_xscale(), axes.get_yscale()) == ("linear", "log")
    assert axes.get_title() == ""
    # False keeps a linear axis where the default is log (more than two decades)
    rows = [RunRow(f"r{n}", {"n": n}, 0, "success", {"m": 1}, 0.1, None, "h") for n in (1, 1000)]
    assert Results(rows).plot("m", x="n").axes[0].get_xscale() == "log"
    assert Results(rows).plot("m", x="n", logx=False).axes[0].get_xscale() == "linear"
    (axes,) = results.plot("err", x="method", hue="n").axes
    assert axes.get_xscale() == "linear"  # a categorical axis


def test_plot_refuses_a_log_axis_for_values_that_have_no_place_on_it(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = _make(tmp_path, _values())
    with pytest.raises(ValueError, match=r"logx=True, but x = 'method' has values that are not"):
        results.plot("err", x="method", logx=True)
    rows = [RunRow(f"r{n}", {"n": n}, 0, "success", {"m": 1.0}, 0.1, None, "h") for n in (0, 1, 10)]
    with pytest.raises(ValueError, match=r"x = 'n' has values <= 0 \(0\)"):
        Results(rows).plot("m", x="n", logx=True)
    # what the message advises works
    (axes,) = Results(rows).filter(n=lambda value: value > 0).plot("m", x="n", logx=True).axes
    assert axes.get_xscale() == "log"


def test_plot_on_a_log_y_axis_ends_a_band_that_reaches_zero_at_the_bottom(
    tmp_path: Path,
) -> None:
    pytest.importorskip("matplotlib")
    rows = [
        RunRow(f"r{n}{k}", {"n": n}, k, "success", {"m": m}, 0.1, None, "h")
        for n, ms in ((1, [0.01, 0.02, 3.0]), (2, [0.5, 0.6, 0.7]))
        for k, m in enumerate(ms)
    ]
    (axes,) = Results(rows).plot("m", x="n", logy=True).axes
    (band,) = [c for c in axes.collections if "Poly" in type(c).__name__]  # not the dots
    lows = [y for _, y in band.get_paths()[0].vertices]
    assert min(lows) == pytest.approx(0.005)  # half the smallest value drawn, not below 0
    assert axes.get_ylim()[0] > 0


def test_plot_path_is_the_deprecated_name_of_out(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    results = _make(tmp_path, _values())
    with pytest.warns(DeprecationWarning, match=r"plot\(path=\.\.\.\) is deprecated: pass out="):
        figure = results.plot("err", x="n", path=tmp_path / "old.png")
    assert isinstance(figure, Figure)
    assert (tmp_path / "old.png").is_file()
    with pytest.raises(TypeError, match="both out= and its deprecated name path="):
        results.plot("err", x="n", out=tmp_path / "a.png", path=tmp_path / "b.png")


def test_plot_title_names_the_experiment_of_the_folder(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from assay import Experiment, grid

    results = Experiment(
        "pi", "assay._demo:estimate_pi", grid(n_samples=[100, 200]), folder=tmp_path, progress=False
    ).run()
    (axes,) = results.plot("abs_error", x="n_samples").axes
    assert axes.get_title() == "pi: abs_error vs n_samples (2 runs)"
    (axes,) = Results.load(tmp_path).plot("abs_error", x="n_samples", hue="n_samples").axes
    assert axes.get_title() == "pi: abs_error vs n_samples, per n_samples (2 runs)"


def test_plot_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'assay\[plot\]'"):
        Results([]).plot("m", x="n")


def test_records_needs_a_folder() -> None:
    with pytest.raises(ValueError, match="no experiment folder"):
        Results([]).records()


def test_load_from_a_folder_without_index(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="has no results index"):
        Results.load(tmp_path)
