"""A sweep on an inline or pool backend: the runs go to the backend chunk by chunk.

Runs go to the backend in chunks that grow while they finish quickly and shrink when they are
slow, so that the progress bar and the index advance while the sweep runs and the per-call
overhead of the backend stays negligible for tiny runs. (Backends that submit jobs get every
run at once: ``_sweep_jobs``.) Ctrl-C, a failing backend or a failing storage stop the sweep:
what completed is kept, the runs left are recorded ``cancelled`` (or left ``pending`` when the
storage failed).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from assay_ops import is_infrastructure_error

from ._index import ResultsIndex
from ._infrastructure import InfrastructureError
from ._interrupt import STOP_REQUESTED
from ._outcomes import _OtherRunError, _outcome
from ._progress import SweepProgress
from ._rows import Outcome
from ._runs import RunSpec

if TYPE_CHECKING:
    import datetime

    from ._experiment import Experiment
    from ._failures import FailureCount

# Runs go to the backend in chunks of at least _MIN_CHUNK runs (enough to fill the workers of a
# pool), doubled while a chunk takes under _FAST seconds (multiplied by 8 under _FAST / 8: each
# chunk costs a flush of the cache and a transaction of the index), halved over _SLOW.
_MIN_CHUNK = max(8, 2 * (os.cpu_count() or 1))
_MAX_CHUNK = 4096
_FAST, _SLOW = 0.25, 2.0


def _next_size(size: int, seconds: float) -> int:
    if seconds < _FAST / 8:
        return min(size * 8, _MAX_CHUNK)
    if seconds < _FAST:
        return min(size * 2, _MAX_CHUNK)
    if seconds > _SLOW:
        return max(size // 2, _MIN_CHUNK)
    return size


def run_chunks(
    experiment: Experiment,
    index: ResultsIndex,
    todo: Sequence[int],
    count: FailureCount,
    session: datetime.datetime,
) -> tuple[int, int]:
    """Run the runs at positions ``todo`` in chunks, writing outcomes to the index.

    Return (executed, cached). The runs go to the backend in chunks, so that the progress
    bar and the index advance while the sweep runs; chunks grow while they finish quickly,
    which keeps the per-call overhead of the backend negligible for tiny runs. Only the chunk
    at hand is made into specs and items. ``count`` stops the sweep at ``max_failures``,
    recording the runs left ``cancelled``.
    """
    chunk: list[RunSpec] = []
    done = 0  # the runs of todo[:done] are stored
    cancelled = kept = 0
    size = _MIN_CHUNK
    # Inline, a chunk stops at the run that reaches max_failures; a pool keeps its
    # workers busy and stops after the chunk in which it was reached.
    pooled = "max_jobs" in getattr(type(experiment.step.infra), "model_fields", {})
    with SweepProgress(len(todo), enabled=experiment._show(), label=experiment.name) as bar:
        try:
            while done < len(todo):
                if STOP_REQUESTED.is_set():  # a Ctrl-C whose exception was swallowed
                    raise KeyboardInterrupt
                if count.reached:
                    left = (experiment.specs.run_id(i) for i in todo[done:])
                    index.mark_ended((r, "cancelled", count.reason(), None) for r in left)
                    break
                allowed = count.left()
                take = size if allowed is None else min(size, max(allowed, 1))
                if pooled and allowed is not None:
                    take = max(take, min(size, _MIN_CHUNK))
                chunk = [experiment.specs[i] for i in todo[done : done + take]]
                began = time.perf_counter()
                outcomes = run_chunk(experiment, chunk, bar, session)
                index.store(outcomes)
                for outcome in outcomes:
                    count.add(outcome.status)
                done, chunk = done + len(chunk), []
                size = _next_size(size, time.perf_counter() - began)
        except KeyboardInterrupt:
            salvaged = _salvage(experiment, index, chunk)
            kept = len(salvaged)
            cancelled = _mark_left(experiment, index, todo, done, salvaged, "cancelled")
        except Exception as error:
            if is_infrastructure_error(error):  # a full disk: no run's outcome
                raise _storage_failed(experiment, index, todo, done, chunk, error) from error
            # The backend failed (a worker killed, a job cancelled or timed out): the
            # unfinished runs are not still to start; record them like an interruption.
            salvaged = _salvage(experiment, index, chunk)
            _mark_left(experiment, index, todo, done, salvaged, "cancelled")
            raise
    if cancelled:  # said after the bar has stopped, so the line stays readable
        interrupted(experiment, done + kept, cancelled)
    return len(todo), bar.cached


def interrupted(experiment: Experiment, kept: int, cancelled: int) -> NoReturn:
    """Say what a Ctrl-C left of the sweep (runs kept, runs cancelled), then re-raise it."""
    print(
        f"{experiment.name}: interrupted; {kept} runs completed and kept, "
        f"{cancelled} cancelled; run again to resume",
        file=sys.stderr,
    )
    raise KeyboardInterrupt


def run_chunk(
    experiment: Experiment, chunk: list[RunSpec], bar: SweepProgress, session: datetime.datetime
) -> list[Outcome]:
    """Run one chunk on the backend; return its outcomes, counted on the bar."""
    batch = []
    misplaced = []
    for spec, text in zip(chunk, experiment.step.run_many(experiment._items(chunk)), strict=True):
        try:
            outcome, ended = _outcome(spec, text)
        except _OtherRunError:
            misplaced.append(spec)
            continue
        batch.append(outcome)
        bar.advance(outcome.status, cached=ended < session)
    if misplaced:  # entries holding another run's record: computed again
        experiment._forget(misplaced)
        for spec, text in zip(
            misplaced, experiment.step.run_many(experiment._items(misplaced)), strict=True
        ):
            outcome, _ = _outcome(spec, text)
            batch.append(outcome)
            bar.advance(outcome.status, cached=False)
    return batch


def _mark_left(
    experiment: Experiment,
    index: ResultsIndex,
    todo: Sequence[int],
    done: int,
    kept: list[str],
    status: str,
) -> int:
    """Mark the runs of ``todo[done:]`` not in ``kept`` with ``status``; return how many.

    ``kept`` are the runs of the chunk at hand that were stored (salvaged).
    """
    stored = set(kept)
    left = (experiment.specs.run_id(i) for i in todo[done:])
    index.mark((run_id for run_id in left if run_id not in stored), status)
    return len(todo) - done - len(stored)


def _storage_failed(
    experiment: Experiment,
    index: ResultsIndex,
    todo: Sequence[int],
    done: int,
    chunk: list[RunSpec],
    error: OSError,
) -> InfrastructureError:
    """Keep the runs that finished, leave the others pending; return the error to raise.

    The storage failing (a full disk, a quota, an I/O error) is no run's outcome: a run it
    stopped is neither failed nor cancelled but still to do, and a plain ``run()`` computes
    it once the storage is fixed (a failed run being retried had its entry dropped: it is
    pending again too). The index may be on the full disk itself: what cannot be written
    there now is read back from the cache, or computed, by that next run.
    """
    salvaged: list[str] = []
    with contextlib.suppress(Exception):  # best effort: the storage error is the news
        salvaged = _salvage(experiment, index, chunk)
    left = len(todo) - done - len(salvaged)
    with contextlib.suppress(Exception):
        _mark_left(experiment, index, todo, done, salvaged, "pending")
    return storage_stopped(
        experiment, error, f"{done + len(salvaged)} completed and kept, {left} left pending"
    )


def storage_stopped(experiment: Experiment, error: OSError, kept: str) -> InfrastructureError:
    """Return the error that says the storage stopped the sweep, and what ``kept`` says."""
    what = (
        str(error)  # the index's own error names it and the folder
        if isinstance(error, InfrastructureError)
        else f"the storage of experiment folder {str(experiment.folder)!r} failed: {error}"
    )
    return InfrastructureError(
        error.errno,
        f"{experiment.name}: stopped: {what}; this is not a failure of the runs: {kept}; free "
        "space (or fix the file system) and run again: a plain run completes them",
        error.filename,
    )


def _salvage(experiment: Experiment, index: ResultsIndex, chunk: list[RunSpec]) -> list[str]:
    """Index the runs of an interrupted chunk that completed; return their run ids.

    The backend wrote their cache entries before the chunk was stopped, so they are kept
    (and counted as kept) rather than marked cancelled and read back on the next run.
    """
    outcomes = []
    for spec, item in zip(chunk, experiment._items(chunk), strict=True):
        handle = experiment.step.lookup(item)
        if handle.status != "success":
            continue
        try:
            outcomes.append(_outcome(spec, handle.result())[0])
        except (RuntimeError, ValueError, KeyError, TypeError):
            continue  # unreadable: left to the next run, which recomputes or rereads it
    index.store(outcomes)
    return [o.run_id for o in outcomes]
