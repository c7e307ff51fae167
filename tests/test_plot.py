"""Plots: the figure `Results.plot` returns, the flags of `assay plot`, the demo's log–log plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import assay._demo
from assay._cli import main
from assay._demo import error_figure
from assay._experiment import Experiment
from assay._results import Results
from assay._space import grid

SIZES = [100, 1_000, 10_000]


@pytest.fixture(scope="module")
def pi_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small π sweep of the demo's operation, run inline: 3 sample sizes × 3 replicates."""
    folder = tmp_path_factory.mktemp("pi")
    Experiment(
        "pi",
        "assay._demo:estimate_pi",
        grid(n_samples=SIZES),
        replicates=3,
        folder=folder,
        progress=False,
    ).run()
    return folder


def _reference(figure: Any) -> Any:
    (axes,) = figure.axes
    (line,) = [line for line in axes.get_lines() if "√n" in line.get_label()]
    return line


def test_the_demo_figure_is_log_log_with_a_labelled_reference_line(pi_folder: Path) -> None:
    pytest.importorskip("matplotlib")
    results = Results.load(pi_folder)
    figure = error_figure(results)
    (axes,) = figure.axes
    assert (axes.get_xscale(), axes.get_yscale()) == ("log", "log")
    assert axes.get_title() == "pi: abs_error vs n_samples (9 runs)"
    line = _reference(figure)
    assert line.get_label().endswith("/√n (reference)")
    assert line.get_linestyle() == "--"
    xs, ys = (list(map(float, v)) for v in (line.get_xdata(), line.get_ydata()))
    assert xs == SIZES
    # a straight line of slope -1/2 on log–log axes: c/√n
    slopes = [
        (math.log(y1) - math.log(y0)) / (math.log(x1) - math.log(x0))
        for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False)
    ]
    assert slopes == pytest.approx([-0.5, -0.5])
    # fitted to the mean errors: the geometric mean of error × √n over the sample sizes
    means = {r["n_samples"]: r["mean"] for r in results.summary("abs_error", by="n_samples")}
    scale = math.exp(sum(math.log(means[n] * math.sqrt(n)) for n in SIZES) / len(SIZES))
    assert ys[0] * math.sqrt(xs[0]) == pytest.approx(scale)
    assert line.get_label() == f"{scale:.2g}/√n (reference)"
    legend = axes.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["mean ± 1 std", line.get_label()]


def test_the_demo_saves_that_figure(
    pi_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    drawn: list[Any] = []

    def keep(results: Results) -> Any:
        drawn.append(error_figure(results))
        return drawn[-1]

    monkeypatch.setattr(assay._demo, "error_figure", keep)
    png = tmp_path / "plots" / "abs_error_by_n_samples.png"
    assert assay._demo._plot(Results.load(pi_folder), png) == png
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = drawn
    assert _reference(figure) is not None
    # the same runs again: the stamp says the file is their plot, drawn the same way
    assert assay._demo._plot(Results.load(pi_folder), png) == png
    assert len(drawn) == 1


def test_assay_plot_takes_log_scales_a_title_and_an_output_file(
    pi_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("matplotlib")
    figures: list[Any] = []
    plot = Results.plot

    def keep(self: Results, *args: Any, **kwargs: Any) -> Any:
        figures.append(plot(self, *args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(Results, "plot", keep)
    out = tmp_path / "figures" / "err.png"
    argv = ["plot", str(pi_folder), "abs_error", "--x", "n_samples", "--logy"]
    assert main([*argv, "--logx", "--title", "π error", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"plot written to {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (axes,) = figures[-1].axes
    assert (axes.get_xscale(), axes.get_yscale(), axes.get_title()) == ("log", "log", "π error")
    # --no-logx keeps a linear x; the default title; the default file in the folder
    assert main(["plot", str(pi_folder), "abs_error", "--x", "n_samples", "--no-logx"]) == 0
    (axes,) = figures[-1].axes
    assert (axes.get_xscale(), axes.get_yscale()) == ("linear", "linear")
    assert axes.get_title() == "pi: abs_error vs n_samples (9 runs)"
    default = pi_folder / "plots" / "abs_error_by_n_samples.png"
    assert capsys.readouterr().out == f"plot written to {default}\n"
    assert default.is_file()


def test_assay_plot_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    text = capsys.readouterr().out
    for flag in ("--hue", "--logx, --no-logx", "--logy", "--title", "--out"):
        assert flag in text
