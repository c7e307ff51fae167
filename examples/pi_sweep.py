"""Estimate π by Monte Carlo over sample sizes × replicates on the process pool.

Run it twice: the second run completes from the cache in well under a second.

    python examples/pi_sweep.py [FOLDER]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from assay import Capture, Experiment, ProcessPool, SeedBundle, grid, operation


@operation
def estimate_pi(params: dict[str, int], seeds: SeedBundle, capture: Capture) -> None:
    """Count random points of the unit square that fall inside the quarter disc."""
    n = int(params["n_samples"])
    xy = seeds.numpy().random((n, 2))
    estimate = 4.0 * float(((xy * xy).sum(axis=1) <= 1.0).mean())
    capture.metric("pi_estimate", estimate)
    capture.metric("abs_error", abs(estimate - math.pi))


def main(folder: str) -> None:
    experiment = Experiment(
        "pi-sweep",
        estimate_pi,
        grid(n_samples=[100, 1_000, 10_000, 100_000]),
        replicates=5,
        backend=ProcessPool(max_jobs=2),
        folder=folder,
        progress=True,
    )
    results = experiment.run()
    print(f"{'n_samples':>10} {'mean':>9} {'std':>9} {'mean |error|':>13}")
    errors = {r["n_samples"]: r for r in results.summary("abs_error", by=["n_samples"])}
    for row in results.summary("pi_estimate", by=["n_samples"]):
        n = row["n_samples"]
        print(f"{n:>10} {row['mean']:>9.5f} {row['std']:>9.5f} {errors[n]['mean']:>13.5f}")
    try:  # log–log: the error shrinks like 1/sqrt(n), a straight line of slope -1/2
        png = Path(folder) / "plots" / "abs_error_by_n_samples.png"
        results.plot("abs_error", x="n_samples", logx=True, logy=True, out=png)
        print("plot:", png)
    except ImportError as error:  # matplotlib is the optional extra assay[plot]
        print("no plot:", error)
    summary = experiment.last_summary
    if summary is not None and summary.from_cache == summary.planned:
        print(f"all {summary.planned} runs came from the cache in {summary.seconds:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/pi-sweep")
