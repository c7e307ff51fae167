"""Tables and summaries of runs: the flat table of ``Results.table`` and per-point statistics.

Both need only the standard library; the names they are asked about are checked first, with
errors that list the names the runs have.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from ._rows import RunRow

#: Column order of the flat table of runs (params and metrics go in between).
_FIRST = ("run_id",)
_LAST = ("replicate", "status", "duration", "error")
#: Columns of the job each run ran in, after ``_LAST``, when some run ran in a batch job.
_JOB = ("job_id", "stdout", "stderr")


def flat_table(
    rows: Iterable[RunRow], param_names: list[str], metric_names: list[str]
) -> list[dict[str, Any]]:
    """Return one flat dict per run, with the columns of ``Results.table``."""
    out: list[dict[str, Any]] = []
    jobs: list[tuple[str | None, str | None, str | None]] = []
    for row in rows:
        out.append({"run_id": row.run_id, "row": row})
        jobs.append((row.job_id, row.stdout, row.stderr))
    # the job's columns when some run ran in a job, named apart from params and metrics
    with_jobs = any(job != (None, None, None) for job in jobs)
    own = {*_FIRST, *_LAST, *(_JOB if with_jobs else ())}
    params = {p: (f"param:{p}" if p in own else p) for p in param_names}
    metrics = {m: (f"metric:{m}" if m in params or m in own else m) for m in metric_names}
    for flat, job in zip(out, jobs, strict=True):
        row = flat.pop("row")
        flat.update({col: row.params.get(p) for p, col in params.items()})
        flat.update({col: row.metrics.get(m) for m, col in metrics.items()})
        flat.update(
            replicate=row.replicate, status=row.status, duration=row.duration, error=row.error
        )
        if with_jobs:
            flat.update(zip(_JOB, job, strict=True))
    return out


def summarise(
    rows: Iterable[RunRow],
    metric: str,
    by: str | Sequence[str] | None,
    param_names: list[str],
    metric_names: list[str],
) -> list[dict[str, Any]]:
    """Return the groups of ``Results.summary``: mean, std and count of ``metric`` per group."""
    _check_metric(metric, "summary()", metric_names)
    # one name is one parameter, as in pandas' groupby (not a list of its letters)
    keys = param_names if by is None else [by] if isinstance(by, str) else list(by)
    for name in keys:
        _check_param(name, "summary(): by", param_names)
    groups: dict[str, tuple[dict[str, Any], list[float]]] = {}
    for row in rows:
        if row.status != "success" or row.metrics.get(metric) is None:
            continue
        value = row.metrics[metric]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"summary(): metric {metric!r} of run {row.run_id} is {value!r}; expected a number"
            )
        point = {k: row.params.get(k) for k in keys}
        groups.setdefault(json.dumps(point, sort_keys=True), (point, []))[1].append(value)
    return [{**point, **_describe(values)} for point, values in groups.values()]


def _check_param(name: str, where: str, names: list[str]) -> None:
    if name not in names:
        raise KeyError(f"{where} = {name!r} is not a parameter; the runs have {names or 'none'}")


def _check_metric(metric: str, where: str, names: list[str]) -> None:
    if metric not in names:
        raise KeyError(f"{where}: no metric {metric!r}; the runs recorded {names or 'none'}")


def _describe(values: list[float]) -> dict[str, Any]:
    """Return mean, sample std and count of ``values`` as pandas' ``agg`` does: NaN skipped.

    A group whose values are all NaN keeps its row (count 0, mean and std NaN), so a point of
    the sweep where every replicate diverged stays visible. An infinite value makes the mean
    infinite (NaN for inf - inf) and the spread unknown (NaN).
    """
    kept = [v for v in values if not math.isnan(v)]
    count = len(kept)
    if not count:
        return {"mean": math.nan, "std": math.nan, "count": 0}
    if all(math.isfinite(v) for v in kept):
        import statistics  # here: loading results (``assay status``) does not need it

        mean = statistics.fmean(kept)
        std = statistics.stdev(kept) if count > 1 else math.nan
    else:  # fmean and stdev refuse infinities: plain float arithmetic gives pandas' answer
        mean, std = sum(kept) / count, math.nan
    return {"mean": mean, "std": std, "count": count}
