"""The plotting methods of ``Results``: a metric against a parameter, or a search's trials.

They draw with ``_plot`` and ``_plot_trials`` (matplotlib, imported when a plot is drawn);
``Results`` inherits them, so its module keeps to reading, filtering and summarising runs.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from matplotlib.figure import Figure

    from ._results import Results
    from ._rowsource import _Runs


class ResultsPlots:
    """Plots of the runs of a ``Results`` (which see)."""

    _runs: _Runs

    def plot(
        self,
        metric: str,
        x: str,
        hue: str | None = None,
        *,
        logx: bool | None = None,
        logy: bool = False,
        title: str | None = None,
        out: str | Path | None = None,
        path: str | Path | None = None,
    ) -> Figure:
        """Plot ``metric`` against parameter ``x``, one line per value of ``hue``.

        Each line joins the means over replicates with a band of ± one standard deviation;
        every replicate is drawn as a dot, so the spread is visible. The figure is returned,
        for you to add to (``figure.axes[0]``), show in a notebook or save; it is saved as a
        PNG only when ``out`` is given.

        Args:
            metric: a scalar metric.
            x: the parameter on the horizontal axis: a numeric axis when all its values are
                numbers, else a categorical one, whose values (strings, booleans, None, lists,
                dicts) are written as text and sorted.
            hue: a parameter whose values get a line each.
            logx: a log scale on x (True), a linear one (False); default log when the
                values are positive numbers that span more than two decades.
            logy: a log scale on y (values <= 0 are not drawn on it).
            title: the title; default the experiment's name, the metric, ``x``, ``hue`` and
                the number of runs drawn, e.g. ``"pi: abs_error vs n_samples (40 runs)"``;
                ``""`` for none.
            out: where to save the figure (its folder is made if missing): a PNG, or the
                format its suffix names (``.pdf``, ``.svg``).
            path: deprecated name of ``out``.

        Returns:
            The ``matplotlib.figure.Figure``, made without pyplot: no window is opened and
            pyplot keeps no reference to it. ``figure.savefig(...)`` saves it again.

        Raises:
            ImportError: matplotlib is not installed (the message names ``assay[plot]``).
            KeyError: unknown metric or parameter.
            ValueError: some runs with a value of the metric have no parameter ``x``, or
                ``logx=True`` for values that are not positive numbers.

        """
        if path is not None:
            if out is not None:
                raise TypeError("plot(): got both out= and its deprecated name path=; pass out=")
            warnings.warn(
                "Results.plot(path=...) is deprecated: pass out=...; plot() now returns the "
                "Figure, and saves it only when out= is given",
                DeprecationWarning,
                stacklevel=2,
            )
            out = path
        from . import _plot

        names = self._runs.names()
        figure = _plot.draw(
            cast("Results", self), metric, x, hue, names=names, logx=logx, logy=logy, title=title
        )
        if out is not None:
            _plot.save(figure, out)
        return figure

    def plot_trials(
        self,
        metric: str | None = None,
        direction: str | None = None,
        *,
        logy: bool = False,
        title: str | None = None,
        out: str | Path | None = None,
    ) -> Figure:
        """Plot a search's metric against the trial number, with the best-so-far line.

        Each successful trial is a dot, pruned ones a cross at their last value; the line
        steps to each new best and the best trial is ringed.

        Args:
            metric: the metric (default: the search's).
            direction: ``"minimize"`` or ``"maximize"`` (default: the search's).
            logy: a log scale on y.
            title: the title (default: experiment, metric, trials); ``""`` for none.
            out: where to save the figure (a PNG, or the format its suffix names).

        Raises:
            ImportError: matplotlib is not installed (the message names ``assay[plot]``).
            KeyError: unknown metric.
            ValueError: no metric given and these results are not a search's.

        """
        from . import _plot
        from ._plot_trials import draw_trials

        figure = draw_trials(cast("Results", self), metric, direction, logy=logy, title=title)
        if out is not None:
            _plot.save(figure, out)
        return figure
