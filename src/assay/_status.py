"""``assay status`` per run (queued, running, done, with job ids), ``--resources``, ``--watch``.

Runs the index holds as finished are ``done``; a run not finished whose job reference (in the
cache, written when its job was submitted) names a job the scheduler still has is ``queued`` or
``running``; any other is ``pending`` (or ``cancelled``). Only ``squeue`` is asked, once (once
a round with ``--watch``, which also shows the metrics the pending runs stream). ``assay
logs`` prints a run's job logs.
"""

from __future__ import annotations

import heapq
import json
import math
import sys
from array import array
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._folder import CACHE
from ._index import ResultsIndex
from ._results import count_runs
from ._rows import RunRow

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    pass

#: Runs listed by ``assay status`` without ``--all``.
LISTED = 50
#: Scheduler states of a job waiting to start, and of one running (squeue's names).
_QUEUED = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED"})
_RUNNING = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"})
#: Margins of the suggestions of ``--resources``.
MEM_MARGIN = 1.25
TIME_MARGIN = 1.5


def job_references(folder: str | Path, config: str | None) -> dict[str, dict[str, Any]]:
    """Return the job reference of each run that was handed to a job, by run id.

    Read from the experiment's step folder in the cache (every code version of it); empty
    when nothing was submitted (inline and pool runs).
    """
    if not config:
        return {}
    base = Path(folder) / CACHE
    step = base / config
    versions = [
        "" if p.parent == step else p.parent.name.removeprefix("code-")
        for p in sorted([*step.glob("jobs"), *step.glob("code-*/jobs")])
    ]
    if not versions:  # nothing was submitted: the steps layer (pydantic) is not even loaded
        return {}
    from assay_steps import StepPaths, job_refs

    refs: dict[str, dict[str, Any]] = {}
    for version in versions:
        refs.update(job_refs(StepPaths(base, config, version)))
    return refs


def job_states(job_ids: list[str]) -> dict[str, str]:
    """Return the scheduler's state of each job it still knows (empty without the backends)."""
    if not job_ids:
        return {}
    try:
        from assay_backends import job_states as states
    except ImportError:
        return {}
    try:
        return dict(states(job_ids))
    except Exception:  # no scheduler here (a folder copied off the cluster): states unknown
        return {}


def run_states(rows: list[RunRow], refs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Return (state, job id) of each row: done, queued, running, pending or cancelled.

    Examples:
        >>> from assay import RunRow
        >>> rows = [RunRow("a", {}, 0, "success", {}, 1.0, None, "h", "7_0")]
        >>> run_states(rows, {})
        [('done (success)', '7_0')]

    """
    waiting = {}
    for row in rows:
        if row.status in ("pending", "cancelled") and row.run_id in refs:
            ref = refs[row.run_id]
            if ref.get("cluster") == "slurm" and ref.get("job_id"):
                waiting[row.run_id] = str(ref["job_id"])
    states = job_states(sorted(set(waiting.values())))
    out = []
    for row in rows:
        job = waiting.get(row.run_id)
        state = states.get(job, "") if job is not None else ""
        if row.status not in ("pending", "cancelled"):
            out.append((f"done ({row.status})", row.job_id or ""))
        elif state in _QUEUED:
            out.append(("queued", job or ""))
        elif state in _RUNNING:
            out.append(("running", job or ""))
        else:
            out.append((row.status, job or row.job_id or ""))
    return out


def print_runs(folder: str | Path, config: str | None, every: bool = False) -> None:
    """Print the state and job of the runs not done (of every run with ``every``)."""
    with ResultsIndex(folder, read_only=True) as index:
        if every:
            rows = list(index.iter_rows())
        else:  # found through the index of statuses: a large sweep's done runs are not read
            waiting = heapq.merge(index.seqs(status="pending"), index.seqs(status="cancelled"))
            rows = list(index.iter_rows(array("q", waiting)))
    if not rows:
        return
    refs = job_references(folder, config)
    states = run_states(rows, refs)
    tally: dict[str, int] = {}
    for state, _ in states:
        if state in ("queued", "running"):
            tally[state] = tally.get(state, 0) + 1
    if tally:
        print("jobs: " + ", ".join(f"{n} {state}" for state, n in tally.items()))
    shown = rows if every else rows[:LISTED]
    print(f"{'run':<34} {'state':<18} job")
    for row, (state, job) in zip(shown, states, strict=False):
        print(f"{row.run_id:<34} {state:<18} {job}")
    if len(rows) > len(shown):
        print(f"... and {count_runs(len(rows) - len(shown))} more (--all lists every run)")


# ---------------------------------------------------------------- resources


def print_resources(folder: str | Path) -> None:
    """Print the most memory, CPU and time the runs used, and the ``--mem``/``--time`` to ask.

    The suggestion: ``--mem`` is 1.25 x the largest peak RSS, rounded up (to 100M, or to a
    whole G above 10G); ``--time`` is 1.5 x the longest job task (the runs of one task, one
    after the other), rounded up to whole minutes.
    """
    peak, cpu, longest, task = _usage(folder)
    if peak is None and longest is None:
        print("resources: no run recorded what it used (runs of an older assay, or none done)")
        return
    if peak is not None:
        print(f"peak memory (max RSS) of a run's process: {format_bytes(peak)}")
    print(f"most CPU time of a run: {cpu:.1f} s")
    print(f"longest run: {longest or 0.0:.1f} s; longest job task: {task or 0.0:.1f} s")
    parts = []
    if peak is not None:
        parts.append(f"--mem {suggest_mem(peak)}")
    parts.append(f"--time {suggest_time(task or longest or 0.0)}")
    print(
        f"suggested for the next sweep: {' '.join(parts)} ({MEM_MARGIN}x the peak memory, "
        f"{TIME_MARGIN}x the longest job task, rounded up)"
    )


def _usage(folder: str | Path) -> tuple[int | None, float, float | None, float | None]:
    """Return the peak RSS, most CPU seconds, longest run and longest job task of the runs."""
    peak: int | None = None
    cpu = 0.0
    longest: float | None = None
    per_job: dict[str, float] = {}
    with ResultsIndex(folder, read_only=True) as index:
        done = [row.run_id for row in index.iter_rows() if row.status not in ("pending",)]
        for start in range(0, len(done), 500):
            for text in index.records(done[start : start + 500]):
                runtime = _runtime(text)
                used = runtime.get("resources")
                if not isinstance(used, dict):
                    continue
                rss, elapsed = used.get("max_rss_bytes"), used.get("elapsed_s")
                if isinstance(rss, int):
                    peak = rss if peak is None else max(peak, rss)
                cpu = max(cpu, float(used.get("cpu_s") or 0.0))
                if isinstance(elapsed, (int, float)):
                    longest = elapsed if longest is None else max(longest, elapsed)
                    job = runtime.get("job")
                    if isinstance(job, str):
                        per_job[job] = per_job.get(job, 0.0) + float(elapsed)
    task = max(per_job.values(), default=longest)
    return peak, cpu, longest, task


def _runtime(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    runtime = data.get("runtime") if isinstance(data, dict) else None
    return runtime if isinstance(runtime, dict) else {}


def suggest_mem(peak_bytes: int) -> str:
    """Return ``--mem`` for a peak RSS: 1.25x, rounded up to 100M (to 1G above 10G).

    Examples:
        >>> suggest_mem(300 * 1024**2), suggest_mem(9 * 1024**3), suggest_mem(20 * 1024**3)
        ('400M', '12G', '25G')

    """
    megabytes = peak_bytes * MEM_MARGIN / 1024**2
    if megabytes > 10 * 1024:
        return f"{math.ceil(megabytes / 1024)}G"
    return f"{max(100, math.ceil(megabytes / 100) * 100)}M"


def suggest_time(seconds: float) -> str:
    """Return ``--time`` for the longest job task: 1.5x, in whole minutes (at least 1).

    Examples:
        >>> suggest_time(30), suggest_time(3000), suggest_time(7200)
        ('1', '75', '3:00:00')

    """
    minutes = max(1, math.ceil(seconds * TIME_MARGIN / 60))
    if minutes < 120:
        return str(minutes)
    return f"{minutes // 60}:{minutes % 60:02d}:00"


def format_bytes(size: int) -> str:
    """Return ``size`` in the largest unit that keeps it above 1 (powers of 1024).

    Examples:
        >>> format_bytes(1536 * 1024)
        '1.5M'

    """
    value = float(size)
    for unit in ("B", "K", "M", "G"):
        if value < 1024:
            return f"{value:.1f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1024
    return f"{value:.1f}T"


# ---------------------------------------------------------------- logs


def print_logs(folder: str | Path, run_id: str, *, paths_only: bool = False) -> int:
    """Print the stdout and stderr of the job run ``run_id`` ran in (their paths only).

    A job's logs hold what every run of the job printed, not this run's alone.

    Raises:
        KeyError: no such run, or an ambiguous prefix.
        FileNotFoundError: the run has no job logs (inline and pool runs print to the
            terminal), or they were deleted.

    """
    from ._reproduce import _resolve_id

    with ResultsIndex(folder, read_only=True) as index:
        statuses = index.statuses()
        info = index.get_meta("experiment", {})
        rid = _resolve_id(Path(folder), run_id, statuses)
        found = index.row(rid)
    row = None if found is None else found[1]
    paths = _log_paths(folder, info.get("config"), rid, row)
    if paths is None:
        raise FileNotFoundError(
            f"run {rid} of {str(folder)!r} has no job logs: it did not run in a batch job "
            "(inline and pool runs print to the terminal), or its job was never submitted"
        )
    for name, path in zip(("stdout", "stderr"), paths, strict=True):
        if paths_only:
            print(f"{name}: {path}")
            continue
        print(f"==> {name}: {path} <==")
        try:
            sys.stdout.write(Path(path).read_text(errors="replace"))
        except FileNotFoundError:
            print(f"(missing: {path} was deleted, or the job has not started yet)")
        sys.stdout.flush()
    return 0


def _log_paths(
    folder: str | Path, config: str | None, run_id: str, row: RunRow | None
) -> tuple[str, str] | None:
    """Return the log paths of a run: from its row, else from its job reference."""
    if row is not None and row.stdout and row.stderr:
        return row.stdout, row.stderr
    ref = job_references(folder, config).get(run_id)
    if ref is None:
        return None
    try:
        from assay_backends import job_logs
    except ImportError:
        return None
    found = job_logs(ref)
    return None if found is None else (str(found[0]), str(found[1]))
