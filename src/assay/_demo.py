"""The demo: estimate π by Monte Carlo over sample sizes × replicates on the process pool."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay_ops import Capture, SeedBundle, operation

from ._experiment import Experiment
from ._results import Results
from ._space import grid
from ._table import print_table

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from matplotlib.figure import Figure

#: Sample sizes of the demo sweep: the error should shrink like 1/sqrt(n).
SAMPLE_SIZES = [100, 1_000, 10_000, 100_000, 1_000_000]

#: How the demo draws its plot; in the plot's stamp, so a plot drawn otherwise is drawn again.
_STYLE = "abs_error vs n_samples, log-log, c/sqrt(n) reference"

# Points are drawn in chunks so that a million samples never hold more than ~16 MB.
_CHUNK = 250_000


@operation
def estimate_pi(params: dict[str, Any], seeds: SeedBundle, capture: Capture) -> None:
    """Estimate π from the fraction of random points of the unit square inside the quarter disc.

    Records ``pi_estimate`` and ``abs_error`` (distance to ``math.pi``).
    """
    n = int(params["n_samples"])
    rng = seeds.numpy()
    inside = 0
    for start in range(0, n, _CHUNK):
        xy = rng.random((min(_CHUNK, n - start), 2))
        inside += int(((xy * xy).sum(axis=1) <= 1.0).sum())
    estimate = 4.0 * inside / n
    capture.metric("pi_estimate", estimate)
    capture.metric("abs_error", abs(estimate - math.pi))


@operation
def train(params: dict[str, Any], seeds: SeedBundle, capture: Capture) -> None:
    """Train a toy model: noisy gradient descent on a quadratic, one ``loss`` per epoch.

    Params: ``lr`` (the step size; the loss falls fastest near 0.5), ``epochs`` (default 20)
    and ``delay`` (seconds per epoch, default 0, to watch it live). It records ``loss`` at
    each epoch (``step=epoch``) and stops when its pruner says so (``capture.should_prune()``):
    the operation of the search guide.
    """
    lr, epochs = float(params["lr"]), int(params.get("epochs", 20))
    delay = float(params.get("delay", 0.0))
    rng = seeds.numpy()
    weight = 5.0
    for epoch in range(epochs):
        weight -= lr * (2.0 * (weight - 1.0) + rng.normal(0.0, 0.1))
        capture.metric("loss", (weight - 1.0) ** 2, step=epoch)
        if delay:
            time.sleep(delay)
        if capture.should_prune():
            return


def pi_table(results: Results) -> list[dict[str, Any]]:
    """Per sample size: mean and std of the estimate and of its absolute error (5 decimals)."""
    estimates = results.summary("pi_estimate", by=["n_samples"])
    errors = {row["n_samples"]: row for row in results.summary("abs_error", by=["n_samples"])}
    return [
        {
            "n_samples": row["n_samples"],
            "runs": row["count"],
            "mean estimate": f"{row['mean']:.5f}",
            "std estimate": f"{row['std']:.5f}",
            "mean |error|": f"{errors[row['n_samples']]['mean']:.5f}",
            "std |error|": f"{errors[row['n_samples']]['std']:.5f}",
        }
        for row in estimates
    ]


def run_demo(
    folder: str | Path = "assay-demo",
    replicates: int = 8,
    max_jobs: int | None = None,
    progress: bool = True,
) -> Results:
    """Run the π sweep on the process pool, print its table, write its plot; return results.

    A second call with the same folder completes from the cache and says so.
    """
    backend: dict[str, Any] = {"backend": "ProcessPool"}
    if max_jobs is not None:
        backend["max_jobs"] = max_jobs
    experiment = Experiment(
        "pi",
        estimate_pi,
        grid(n_samples=SAMPLE_SIZES),
        replicates=replicates,
        backend=backend,
        folder=folder,
        progress=progress,
    )
    results = experiment.run()
    print_table(pi_table(results), title="Monte Carlo estimate of π")
    try:
        path = _plot(results, Path(folder) / "plots" / "abs_error_by_n_samples.png")
        print(f"plot of the error against the sample size: {path}")
    except ImportError as error:
        print(f"no plot: {error}", file=sys.stderr)
    summary = experiment.last_summary
    if summary is not None and summary.from_cache == summary.planned:
        print(
            f"all {summary.planned} runs came from the cache in {summary.seconds:.3f} s: "
            "nothing was recomputed"
        )
    else:
        print(f"results are kept in {folder}/; run the demo again to get them from the cache")
    return results


def error_figure(results: Results) -> Figure:
    """Plot the error against the sample size, log–log, beside a reference line ∝ 1/√n.

    The error of a Monte Carlo estimate shrinks like 1/√n: on log–log axes, a straight line of
    slope -1/2. The reference is ``c/√n`` with ``c`` fitted to the mean errors (the mean of
    ``log(error) + log(n)/2``), drawn dashed and labelled with its ``c``.

    Raises:
        ImportError: matplotlib is not installed (the message names ``assay[plot]``).

    """
    figure = results.plot("abs_error", x="n_samples", logx=True, logy=True)
    means = [
        (row["n_samples"], row["mean"])
        for row in results.summary("abs_error", by=["n_samples"])
        if row["mean"] > 0
    ]
    axes = figure.axes[0]
    if means:
        scale = math.exp(statistics.fmean(math.log(m) + math.log(n) / 2 for n, m in means))
        ns = sorted(n for n, _ in means)
        label = f"{scale:.2g}/√n (reference)"
        axes.plot(ns, [scale / math.sqrt(n) for n in ns], "k--", linewidth=1, label=label)
    axes.legend()
    return figure


def _plot(results: Results, path: Path) -> Path:
    """Save the demo's figure at ``path``, unless ``path`` already holds that very plot.

    Drawing costs about a second (matplotlib's import and rendering): the demo run again from
    the cache keeps the plot of the same runs. A stamp beside it names the runs plotted, how
    they were drawn and the PNG's own digest, so a plot of other runs, one drawn another way
    (an earlier version's), or a replaced or removed file, is drawn again.
    """
    from ._plot import save

    stamp = path.with_name(f".{path.name}.stamp")
    plotted = [[r.run_id, r.status, r.metrics.get("abs_error")] for r in results.rows]
    runs = json.dumps([_STYLE, plotted])
    if path.is_file() and stamp.is_file() and stamp.read_text() == _stamp(runs, path):
        return path
    drawn = save(error_figure(results), path)
    stamp.write_text(_stamp(runs, drawn))
    return drawn


def _stamp(runs: str, png: Path) -> str:
    plotted, drawn = hashlib.sha256(runs.encode()), hashlib.sha256(png.read_bytes())
    return f"{plotted.hexdigest()} {drawn.hexdigest()}"
