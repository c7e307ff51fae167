"""The best run of a search (or of any sweep, by a metric): ``Results.best``.

A search stores what it optimises (metric and direction) in its folder's index, so the
results of a search know which run is best without being told.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._rows import RunRow

#: Meta key of the index under which a search stores its description.
SEARCH_META = "search"


def search_of(folder: Path | None) -> dict[str, Any] | None:
    """Return the description of the search run in ``folder`` (None: no search there)."""
    if folder is None or not folder.exists():
        return None
    from ._index import ResultsIndex

    try:
        with ResultsIndex(folder, read_only=True) as index:
            found = index.get_meta(SEARCH_META)
    except FileNotFoundError:
        return None
    return found if isinstance(found, dict) else None


def objective(folder: Path | None, metric: str | None, direction: str | None) -> tuple[str, str]:
    """Return the (metric, direction) to rank runs by: the arguments, else the search's.

    Raises:
        ValueError: no metric given and the folder holds no search, or a bad direction.

    """
    described = search_of(folder) if metric is None or direction is None else None
    if metric is None:
        if described is None:
            raise ValueError(
                "best(): metric = None and these results are not a search's; pass the metric "
                "to rank runs by (and direction='minimize' or 'maximize')"
            )
        metric = str(described["metric"])
    if direction is None:
        direction = str(described["direction"]) if described else "minimize"
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"best(): direction = {direction!r}; expected 'minimize' or 'maximize'")
    return metric, direction


def best_row(rows: Iterable[RunRow], metric: str, direction: str) -> RunRow:
    """Return the successful run with the best finite value of ``metric`` (the first of ties).

    Raises:
        ValueError: no successful run recorded ``metric`` as a finite number.

    """
    sign = 1.0 if direction == "minimize" else -1.0
    best: RunRow | None = None
    best_value = math.inf
    for row in rows:
        value = finite(row.metrics.get(metric))
        if row.status == "success" and value is not None and sign * value < best_value:
            best, best_value = row, sign * value
    if best is None:
        raise ValueError(f"best(): no successful run recorded metric {metric!r} as a finite number")
    return best


def best_so_far(values: Iterable[float | None], direction: str) -> list[float | None]:
    """Return the running best of ``values`` (None where no value yet).

    Examples:
        >>> best_so_far([3.0, None, 1.0, 2.0], "minimize")
        [3.0, 3.0, 1.0, 1.0]

    """
    pick = min if direction == "minimize" else max
    out: list[float | None] = []
    current: float | None = None
    for value in values:
        if value is not None:
            current = value if current is None else pick(current, value)
        out.append(current)
    return out


def finite(value: Any) -> float | None:
    """Return ``value`` as a float if it is a finite number (not a bool), else None.

    Examples:
        >>> finite(2), finite(float("nan")), finite(True), finite("1")
        (2.0, None, None, None)

    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def search_best(results: Any) -> tuple[str, RunRow | None] | None:
    """Return a search's metric and its best run (None before any trial recorded it).

    None when ``results`` are not a search's (their folder holds no search).
    """
    described = search_of(results.folder)
    if described is None:
        return None
    metric = str(described["metric"])
    try:
        return metric, best_row(results, metric, str(described["direction"]))
    except ValueError:
        return metric, None


def best_line(name: str, results: Any) -> str | None:
    """Return the line naming the best run of a search's ``results`` (None: not a search)."""
    found = search_best(results)
    if found is None:
        return None
    metric, row = found
    if row is None:
        return f"{name}: no trial recorded {metric!r} yet"
    return f"{name}: best {metric} = {row.metrics[metric]:.6g} (run {row.run_id}): {row.params}"
