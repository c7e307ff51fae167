"""Packing items into jobs: at most ``max_jobs`` jobs, at least ``min_items_per_job`` items each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def job_count(n_items: int, max_jobs: int, min_items_per_job: int = 1) -> int:
    """Return how many jobs ``n_items`` items are packed into.

    As many jobs as possible, but no more than ``max_jobs`` and none with fewer than
    ``min_items_per_job`` items (unless there are fewer items than that in total, which makes one
    job). No items make no job.

    Examples:
        >>> job_count(100, max_jobs=4)
        4
        >>> job_count(10, max_jobs=128, min_items_per_job=3)
        3

    """
    _positive("max_jobs", max_jobs)
    _positive("min_items_per_job", min_items_per_job)
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items!r}")
    if n_items == 0:
        return 0
    return max(1, min(max_jobs, n_items // min_items_per_job))


def pack(items: Sequence[T], max_jobs: int, min_items_per_job: int = 1) -> list[list[T]]:
    """Split ``items`` into ``job_count`` contiguous groups whose sizes differ by at most one.

    Order is kept: concatenating the groups gives back ``items``.

    Examples:
        >>> pack(list(range(7)), max_jobs=3)
        [[0, 1, 2], [3, 4], [5, 6]]

    """
    n_jobs = job_count(len(items), max_jobs, min_items_per_job)
    groups: list[list[T]] = []
    start = 0
    for index in range(n_jobs):
        # The first len % n_jobs groups take one extra item, so sizes differ by at most one.
        size = len(items) // n_jobs + (1 if index < len(items) % n_jobs else 0)
        groups.append(list(items[start : start + size]))
        start += size
    return groups


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
