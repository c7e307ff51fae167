"""How many pool workers to start."""

from __future__ import annotations

import os


def worker_count(max_jobs: int | None, n_items: int, cpus: int | None = None) -> int:
    """Return ``min(max_jobs, n_items, cpus)``, at least 1.

    ``cpus`` defaults to ``os.cpu_count()``. Unlike exca, which keeps one CPU back
    (``cpu_count - 1``), every core is used: on a 2-core machine exca's pools never run two
    items at once, assay's do.

    Examples:
        >>> worker_count(128, n_items=10, cpus=2)
        2
        >>> worker_count(3, n_items=10, cpus=8)
        3

    """
    available = cpus if cpus is not None else (os.cpu_count() or 1)
    limits = [n_items, available] + ([max_jobs] if max_jobs is not None else [])
    return max(1, min(limits))
