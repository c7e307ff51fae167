"""Estimate pi by Monte Carlo: the reference library's example, with assay_ops names.

Run it with ``python examples/estimate_pi.py``: three sample sizes × three replicates, each
with its own reproducible random stream, printed as a small table.
"""

from assay_ops import SeedBundle, operation


@operation
def estimate_pi(params, seeds, capture):
    """Draw n points in the unit square; the share inside the quarter circle is pi/4."""
    n = params["n_samples"]
    rng = seeds.numpy()
    x, y = rng.random(n), rng.random(n)
    pi_est = 4.0 * (x**2 + y**2 <= 1).mean()
    capture.metric("pi_estimate", pi_est)


def main() -> None:
    """Run every sample size and replicate, and print one line per run."""
    print(f"{'n_samples':>9}  {'replicate':>9}  {'pi_estimate':>11}  status")
    for n_samples in (1_000, 10_000, 100_000):
        params = {"n_samples": n_samples}
        for replicate in range(3):
            seeds = SeedBundle(42, params, replicate=replicate)
            record = estimate_pi.run(params=params, seeds=seeds)
            estimate = record.metric("pi_estimate")
            print(f"{n_samples:>9}  {replicate:>9}  {estimate:>11.5f}  {record.status}")


if __name__ == "__main__":
    main()
