"""Operations of the cluster-scale rows of ``bench/backends.py``.

They live in a module of their own because Slurm jobs import an experiment's operation by its
ref (``_cluster_ops:nap``) in a new interpreter, where the benchmark script is not
``__main__``. (Its name starts with ``_``: ``run_all.py`` runs every other script of this
folder as a benchmark.)
"""

from __future__ import annotations

import time
from typing import Any

from assay import Capture, operation


@operation
def nap(params: dict[str, Any], capture: Capture) -> None:
    """Sleep ``params["seconds"]`` seconds: a run whose cost is all wall time."""
    time.sleep(params["seconds"])
    capture.metric("slept", params["seconds"])
