"""The objective of ``bench/search.py``: a noisy 5-d Rosenbrock function, for every tool.

Pool workers and the killed drivers import the operations by their ref (``_search_ops:noisy``)
in interpreters where the benchmark script is not ``__main__``. (The name starts with ``_``:
``run_all.py`` runs every other script of this folder as a benchmark.)

Run as a script, the module is the Hydra application of the benchmark's Hydra rows
(``python _search_ops.py --multirun hydra/sweeper=optuna ...``): the same objective, returned
to Hydra's Optuna sweeper.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from assay import Capture, operation

DIMS = 5
LOW, HIGH = -2.0, 2.0
NOISE = 1.0  # the standard deviation of the noise added to each value
#: Computed runs append a line to this file (when set): what "computed once" is counted on.
LOG = "SEARCH_BENCH_LOG"


def rosenbrock(x: Sequence[float]) -> float:
    """Return the Rosenbrock function of ``x`` (0 at x = (1, ..., 1))."""
    return float(
        sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(len(x) - 1))
    )


def noisy_rosenbrock(params: Mapping[str, float]) -> float:
    """Return the Rosenbrock function of the point ``x0..x4`` plus Gaussian noise.

    The noise is drawn from a generator seeded by the point itself: every tool evaluates the
    same function, and a point evaluated again (a cached run) gives the same value.
    """
    x = [float(params[f"x{i}"]) for i in range(DIMS)]
    digest = hashlib.blake2b(struct.pack(f"{DIMS}d", *x), digest_size=8).digest()
    noise = np.random.default_rng(int.from_bytes(digest, "little")).normal(0.0, NOISE)
    return rosenbrock(x) + float(noise)


def log_line(params: Mapping[str, Any]) -> None:
    """Append ``time point`` to the file named by ``$SEARCH_BENCH_LOG``, when it is set."""
    path = os.environ.get(LOG)
    if path:
        point = " ".join(repr(float(params[f"x{i}"])) for i in range(DIMS))
        with open(path, "a") as log:  # one short write: whole lines from concurrent runs
            log.write(f"{time.time():.6f} {point}\n")


@operation
def noisy(params: dict[str, Any], capture: Capture) -> None:
    """Record the noisy Rosenbrock value of the point (after ``params["sleep"]`` seconds)."""
    if params.get("sleep"):
        time.sleep(params["sleep"])
    value = noisy_rosenbrock(params)
    log_line(params)
    capture.metric("value", value)


@operation
def trivial(params: dict[str, Any], capture: Capture) -> None:
    """Record ``x0``: a trial whose cost is all the search's own."""
    capture.metric("value", params["x0"])


def hydra_app() -> None:
    """Run the objective as a Hydra application (its sweeper given on the command line)."""
    import hydra
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="rosenbrock", node={f"x{i}": 0.0 for i in range(DIMS)})

    @hydra.main(config_name="rosenbrock")
    def objective(cfg: Any) -> float:
        params = {f"x{i}": cfg[f"x{i}"] for i in range(DIMS)}
        value = noisy_rosenbrock(params)
        log_line(params)
        return value

    objective()


if __name__ == "__main__":
    hydra_app()
