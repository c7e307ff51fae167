"""The plot of a search: each trial's metric against its trial number, and the best so far.

Trials are the search's runs in planning order (the order the sampler proposed them). A
successful run is a dot; the best-so-far line steps down (or up, when maximising) each time
a trial beats every earlier one, and the best trial is ringed. Pruned runs, which stopped
before their end, are drawn as crosses at their last value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._best import best_so_far, finite, objective
from ._plot import SIZE, _figure_class, _name
from ._results import count_runs
from ._summary import _check_metric

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from matplotlib.figure import Figure

    from ._results import Results


def draw_trials(
    results: Results,
    metric: str | None,
    direction: str | None,
    *,
    logy: bool = False,
    title: str | None = None,
) -> Figure:
    """Draw a search's trials for ``Results.plot_trials()`` (which documents the arguments)."""
    figure_class = _figure_class()
    metric, direction = objective(results.folder, metric, direction)
    _check_metric(metric, "plot_trials()", results.metric_names)
    values: list[float | None] = []
    pruned: list[tuple[int, float]] = []
    for number, row in enumerate(results):
        value = finite(row.metrics.get(metric))
        values.append(value if row.status == "success" else None)
        if value is not None and row.status == "pruned":
            pruned.append((number, value))
    figure = figure_class(figsize=SIZE)
    axes = figure.add_subplot()
    done = [(n, v) for n, v in enumerate(values) if v is not None]
    axes.plot([n for n, _ in done], [v for _, v in done], "o", ms=4, label=metric)
    if pruned:
        axes.plot(*zip(*pruned, strict=True), "x", color="grey", label="pruned")
    running = best_so_far(values, direction)
    drawn = [math.nan if value is None else value for value in running]  # a gap before any
    axes.step(range(len(drawn)), drawn, where="post", color="C3", label="best so far")
    if done:
        pick = min if direction == "minimize" else max
        best_number, best_value = pick(done, key=lambda item: item[1])
        axes.plot([best_number], [best_value], "o", ms=10, mfc="none", mec="C3", label="best")
    axes.set_xlabel("trial")
    axes.set_ylabel(metric)
    if logy:
        axes.set_yscale("log")
    if title is None:
        name = _name(results)
        title = f"{name + ': ' if name else ''}{metric} by trial ({count_runs(len(values))})"
    if title:
        axes.set_title(title)
    axes.legend(loc="best", fontsize="small")
    return figure
