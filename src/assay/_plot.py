"""Plots of results: a metric against a parameter, with the spread of the replicates.

``Results.plot()`` is the entry point; this module draws. The figure is a
``matplotlib.figure.Figure`` made without pyplot: drawing chooses no backend and opens no
window, and pyplot keeps no reference to it (a loop of plots leaks nothing). Save it with
``figure.savefig(path)``; a notebook shows it as the value of a cell.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._index import ResultsIndex
from ._results import count_runs
from ._summary import _check_metric, _check_param

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._results import Results

#: Size of a plot in inches, and the resolution of the PNG it is saved as.
SIZE = (6.0, 4.0)
DPI = 120

#: A dot of a plot: run id, x value (``_ABSENT`` when the run has no such parameter), the
#: text of its hue value (None without a hue) and the metric's value.
_Dot = tuple[str, Any, "str | None", Any]
_ABSENT = object()


def draw(
    results: Results,
    metric: str,
    x: str,
    hue: str | None = None,
    *,
    names: tuple[list[str], list[str]],
    logx: bool | None = None,
    logy: bool = False,
    title: str | None = None,
) -> Figure:
    """Draw ``metric`` against ``x`` for ``Results.plot()`` (which documents the arguments).

    ``names`` are the names of the parameters and metrics of ``results``, read once by the
    caller.
    """
    figure_class = _figure_class()
    param_names, metric_names = names
    _check_metric(metric, "plot()", metric_names)
    _check_param(x, "plot(): x", param_names)
    if hue is not None:
        _check_param(hue, "plot(): hue", param_names)
    rows = results.summary(metric, by=[x] if hue is None else [hue, x])
    dots = _dots(results, metric, x, hue)
    numeric = _numeric_axis(dots, metric, x)
    log_x = _log_x(logx, numeric, rows, x)
    figure = figure_class(figsize=SIZE, layout="constrained")
    axes = figure.add_subplot()
    floor = _floor(rows, dots) if logy else None
    for label, points in _split(rows, hue).items():
        points.sort(key=lambda p: _position(p[x], numeric))
        xs = [_position(p[x], numeric) for p in points]
        means = [p["mean"] for p in points]
        stds = [0.0 if math.isnan(p["std"]) else p["std"] for p in points]
        line = axes.plot(xs, means, marker="o", label="mean ± 1 std" if hue is None else label)[0]
        low = [m - s for m, s in zip(means, stds, strict=True)]
        if floor is not None:  # a band down to 0 or below ends at the bottom of a log axis
            low = [v if v > 0 else floor for v in low]
        high = [m + s for m, s in zip(means, stds, strict=True)]
        axes.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)
        _scatter(axes, dots, label, numeric, line.get_color())
    if log_x:
        axes.set_xscale("log")
    if logy:
        axes.set_yscale("log")
    axes.set_xlabel(x)
    axes.set_ylabel(metric)
    if hue is not None:
        axes.legend(title=hue)
    axes.grid(alpha=0.3, which="both" if log_x or logy else "major")
    if title is None:
        title = default_title(metric, x, hue, _name(results), len(dots))
    axes.set_title(title)
    return figure


def save(figure: Figure, path: str | Path) -> Path:
    """Save ``figure`` at ``path`` (its folder made if missing); return the path.

    The format follows the suffix (``.png``, ``.pdf``, ``.svg``); a PNG without one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=DPI, format=None if target.suffix else "png")
    return target


def default_path(folder: Path | None, metric: str, x: str, hue: str | None) -> Path:
    """Return where ``assay plot`` writes a plot without ``--out``.

    That is ``<folder>/plots/<metric>_by_<x>.png``, or ``<metric>_by_<x>_per_<hue>.png``
    with a hue (the current folder when there is no experiment folder).

    Examples:
        >>> default_path(Path("runs"), "loss", "lr", "opt").as_posix()
        'runs/plots/loss_by_lr_per_opt.png'

    """
    base = folder / "plots" if folder is not None else Path.cwd()
    # the hue is in the name: a plot per hue must not overwrite the plot without one
    per = "" if hue is None else f"_per_{_safe(hue)}"
    return base / f"{_safe(metric)}_by_{_safe(x)}{per}.png"


def default_title(metric: str, x: str, hue: str | None, name: str | None, runs: int) -> str:
    """Return the title of a plot: experiment, metric, x and hue, and the runs it draws.

    Examples:
        >>> default_title("abs_error", "n_samples", None, "pi", 40)
        'pi: abs_error vs n_samples (40 runs)'
        >>> default_title("loss", "lr", "opt", None, 1)
        'loss vs lr, per opt (1 run)'

    """
    per = "" if hue is None else f", per {hue}"
    experiment = "" if not name else f"{name}: "
    return f"{experiment}{metric} vs {x}{per} ({count_runs(runs)})"


def _figure_class() -> type[Figure]:
    try:
        # the package itself, not only the submodule: the extra is missing (or was removed)
        # even where a part of it had been imported
        import matplotlib.figure
    except ImportError as error:
        raise ImportError("Results.plot() needs matplotlib: pip install 'assay[plot]'") from error
    return matplotlib.figure.Figure


def _name(results: Results) -> str | None:
    """Return the name of the experiment whose folder ``results`` were read from, if known."""
    if results.folder is None:
        return None
    try:
        with ResultsIndex(results.folder, read_only=True) as index:
            info = index.get_meta("experiment", {})
    except (OSError, sqlite3.Error):  # rows given with a folder that has no index
        return None
    name = info.get("name") if isinstance(info, dict) else None
    return name if isinstance(name, str) else None


def _dots(results: Results, metric: str, x: str, hue: str | None) -> list[_Dot]:
    """Return a dot per run the plot draws (successful, with a value of the metric)."""
    return [
        (
            row.run_id,
            row.params.get(x, _ABSENT),
            None if hue is None else str(row.params.get(hue)),
            row.metrics[metric],
        )
        for row in results
        if row.status == "success" and row.metrics.get(metric) is not None
    ]


def _numeric_axis(dots: list[_Dot], metric: str, x: str) -> bool:
    """Whether ``x`` gets a numeric axis (all numbers) or a categorical one (anything else).

    Raises:
        ValueError: some plotted runs have no parameter ``x`` (explicit lists of dicts with
            different keys): they have no place on the axis.

    """
    missing = [run_id for run_id, value, _, _ in dots if value is _ABSENT]
    if missing:
        raise ValueError(
            f"plot(): x = {x!r}: {count_runs(len(missing))} ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}) {'has' if len(missing) == 1 else 'have'} "
            "no such parameter; expected it in "
            f"every run with a value of {metric!r}: plot the runs that have it with "
            f"results.filter({x}=lambda value: True).plot(...)"
        )
    return all(_is_number(value) for _, value, _, _ in dots)


def _log_x(logx: bool | None, numeric: bool, rows: list[dict[str, Any]], x: str) -> bool:
    """Whether the x axis is logarithmic: as asked, else when its values span two decades.

    Raises:
        ValueError: ``logx=True`` for values that have no place on a log axis (not numbers,
            or not positive).

    """
    if logx is None:
        return numeric and _wide(rows, x)
    if not logx:
        return False
    if not numeric:
        raise ValueError(
            f"plot(): logx=True, but x = {x!r} has values that are not numbers (a categorical "
            "axis); expected numbers for a log scale: plot without logx"
        )
    bad = sorted({r[x] for r in rows if r[x] <= 0})
    if bad:
        raise ValueError(
            f"plot(): logx=True, but x = {x!r} has values <= 0 ({', '.join(map(str, bad[:3]))}); "
            "expected positive values for a log scale: plot without logx, or filter them out "
            f"with results.filter({x}=lambda value: value > 0)"
        )
    return True


def _floor(rows: list[dict[str, Any]], dots: list[_Dot]) -> float:
    """Return where a band that reaches 0 or below ends on a log y axis.

    Half the smallest positive value drawn: the band runs to the bottom of the plot, and the
    axis still spans the values (matplotlib would drop the edge's points and draw a cliff).
    """
    values = [r["mean"] - r["std"] for r in rows] + [r["mean"] for r in rows]
    values += [y for _, _, _, y in dots]
    positive = [v for v in values if _is_number(v) and v > 0 and math.isfinite(v)]
    return min(positive) / 2 if positive else 1.0


def _scatter(axes: Axes, dots: list[_Dot], label: str, numeric: bool, color: Any) -> None:
    """Draw the dots of the line ``label`` (every dot when the plot has no hue)."""
    chosen = [(value, y) for _, value, hue, y in dots if hue is None or hue == label]
    xs = [_position(value, numeric) for value, _ in chosen]
    axes.scatter(xs, [y for _, y in chosen], s=10, color=color, alpha=0.5)


def _split(rows: list[dict[str, Any]], hue: str | None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault("all" if hue is None else str(row[hue]), []).append(row)
    return out


def _is_number(value: Any) -> bool:
    # booleans are categories: True and 1 are different parameter values in assay
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _position(value: Any, numeric: bool) -> Any:
    """Return where a value goes on the x axis: itself, or its text on a categorical axis."""
    return value if numeric or isinstance(value, str) else str(value)


def _wide(rows: Sequence[dict[str, Any]], x: str) -> bool:
    values = [r[x] for r in rows if _is_number(r[x])]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "metric"
