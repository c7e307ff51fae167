"""A parameter sweep on Slurm, or on local processes where there is no Slurm.

Run: ``python examples/slurm_example.py [folder]``. With ``sbatch`` on PATH the 20 seeds run as
a Slurm job array of 4 jobs (``scripts/slurm/start.sh`` starts a single-node cluster);
elsewhere ``Auto`` runs the same jobs as local processes. Run it twice: the second run reads
every result from the cache and submits nothing.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from assay_backends import slurm_available
from assay_steps import Step


class Simulate(Step):
    """Mean of ``steps`` uniform draws from a seeded generator."""

    steps: int = 100_000

    def _run(self, seed: int) -> float:
        rng = random.Random(seed)
        return sum(rng.random() for _ in range(self.steps)) / self.steps


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "slurm-example-cache").absolute()
    infra = {"backend": "Auto", "folder": folder, "max_jobs": 4, "timeout_min": 5}
    step = Simulate(infra=infra)
    where = "Slurm" if slurm_available() else "local processes"
    start = time.perf_counter()
    means = list(step.run_many(range(20)))
    print(f"{len(means)} seeds on {where} in {time.perf_counter() - start:.1f} s")
    print(f"overall mean {sum(means) / len(means):.4f} (expected about 0.5)")
    print(f"seed 0 was computed by {step.lookup(0).job()}")


if __name__ == "__main__":
    main()
