"""A sweep on a backend that submits jobs: every missing run in one submission, indexed live.

On a backend whose class ``submits_jobs`` (submitit, Slurm), the runs to do go to the backend
in one ``run_many`` call (up to ``ROUND`` runs at a time), so that the scheduler gets every job
at once and fills the cluster, rather than chunk after chunk. The call runs inside
``assay_backends.watch``: the backend calls back while it waits, and each callback indexes the
runs that landed in the cache since the last one (advancing the progress bar, so that
``assay status`` is live), records the runs of jobs that ended without computing them, and
counts failures against ``max_failures``, whose limit stops the sweep (the backend cancels the
jobs left).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from assay_ops import is_infrastructure_error

from ._failures import FailureCount, TooManyFailures
from ._index import ResultsIndex
from ._interrupt import STOP_REQUESTED
from ._outcomes import _OtherRunError, _outcome
from ._progress import SweepProgress
from ._rows import Outcome, job_text
from ._runs import RunSpec
from ._sweep_chunks import interrupted, run_chunk, storage_stopped

if TYPE_CHECKING:
    import datetime

    from ._experiment import Experiment

#: Most runs handed to the backend in one call (their items and specs are held in memory).
ROUND = 100_000
#: Seconds between two updates of the index while the jobs run (a job's end updates at once).
INDEX_EVERY = 1.0

#: Error of a run that no failed job named and whose entry is missing after the round.
_NOT_COMPUTED = "not computed: the backend returned without computing it; run again to compute it"
#: Status of the runs of a job that ended without computing them, by the job's kind.
_STATUS = {"timeout": "timeout", "cancelled": "cancelled", "failed": "failed"}


def submits_jobs(backend: Any) -> bool:
    """Whether ``backend`` runs items in batch jobs (its class's ``submits_jobs``)."""
    return bool(getattr(type(backend), "submits_jobs", False))


def run_jobs(
    experiment: Experiment,
    index: ResultsIndex,
    todo: Sequence[int],
    count: FailureCount,
    session: datetime.datetime,
) -> tuple[int, int]:
    """Run the runs at positions ``todo`` on a backend that submits jobs (``JobSweep``).

    Return (executed, cached).
    """
    with SweepProgress(len(todo), enabled=experiment._show(), label=experiment.name) as bar:
        sweep = JobSweep(experiment, index, bar, session, count)
        try:
            sweep.run(todo)
        except OSError as error:
            if not is_infrastructure_error(error):
                raise
            kept = f"{sweep.completed} completed and kept, the others left pending"
            raise storage_stopped(experiment, error, kept) from error
    if sweep.interrupted:  # said after the bar has stopped, so the line stays readable
        interrupted(experiment, sweep.completed, sweep.cancelled)
    return len(todo), bar.cached


class JobSweep:
    """Runs the runs of a sweep on a job backend, round by round (see the module's doc).

    Attributes:
        completed: runs indexed as they ended (any status).
        cancelled: runs recorded ``cancelled`` because the sweep stopped (interrupted, or
            ``max_failures`` reached), not counting runs of cancelled jobs.
        interrupted: Ctrl-C stopped the sweep (the caller says so and re-raises).

    """

    def __init__(
        self,
        experiment: Experiment,
        index: ResultsIndex,
        bar: SweepProgress,
        session: datetime.datetime,
        count: FailureCount,
    ) -> None:
        self.experiment = experiment
        self.step = experiment.step
        self.index = index
        self.bar = bar
        self.session = session
        self.count = count
        self.completed = 0
        self.cancelled = 0
        self.interrupted = False
        self._outstanding: dict[str, RunSpec] = {}
        self._last = 0.0

    # -------------------------------------------------------------- the sweep

    def run(self, todo: Sequence[int]) -> None:
        """Run the runs at positions ``todo`` of the sweep; record every one in the index."""
        done = 0
        while done < len(todo) and not self.interrupted:
            if self.count.reached:
                self._cancel_rest(todo, done, self.count.reason())
                return
            if STOP_REQUESTED.is_set():  # a Ctrl-C whose exception was swallowed
                self.interrupted = True
                break
            positions = todo[done : done + ROUND]
            self._round([self.experiment.specs[i] for i in positions])
            done += len(positions)
        if self.interrupted:
            self._cancel_rest(todo, done, None)

    def _round(self, specs: list[RunSpec]) -> None:
        from assay_backends import JobsFailed, watch

        self._outstanding = {spec.run_id: spec for spec in specs}
        self._last = time.monotonic()
        try:
            with watch(self._watch):
                texts = list(self.step.run_many(self.experiment._items(specs)))
        except JobsFailed as error:  # every job ended; some without computing their runs
            self._collect()
            self._record_failures(error.failures)
            self._leave(_NOT_COMPUTED)
        except TooManyFailures:  # raised by _watch; the backend cancelled the jobs left
            self._collect()
            self._leave(self.count.reason())
        except KeyboardInterrupt:
            self._collect()
            self._leave(None)
            self.interrupted = True
        except Exception as error:
            if is_infrastructure_error(error):
                # The storage failed (a full disk): no run's outcome. What landed is kept if
                # the index can take it; the others stay pending, for a plain rerun.
                with contextlib.suppress(Exception):
                    self._collect()
                with contextlib.suppress(Exception):
                    self.index.mark(list(self._outstanding), "pending")
                raise
            # The backend failed otherwise (a task raised): what landed is kept, the rest is
            # recorded as the sweep of chunks records it, and the error goes on.
            self._collect()
            self._leave(None)
            raise
        else:
            self._finish(specs, texts)

    # -------------------------------------------------------------- while the jobs run

    def _watch(self, failures: Sequence[Any]) -> None:
        """Index what landed, record failed jobs, apply the policy (the backend's callback)."""
        if STOP_REQUESTED.is_set():
            raise KeyboardInterrupt
        now = time.monotonic()
        if not failures and now - self._last < INDEX_EVERY:
            return
        self._last = now
        self._collect()
        if failures:
            self._record_failures(failures)
        if self.count.reached:
            raise TooManyFailures(self.count.reason())

    def _collect(self) -> None:
        """Index the outstanding runs whose records landed in the cache since the last look."""
        if not self._outstanding:
            return
        texts = self.step.landed(list(self._outstanding))
        outcomes = []
        for run_id, text in texts.items():
            outcome = self._outcome(self._outstanding[run_id], text)
            if outcome is None:
                continue  # another run's record: left to the end of the round
            del self._outstanding[run_id]
            outcomes.append(outcome)
        if outcomes:
            self.index.store(outcomes)

    def _outcome(self, spec: RunSpec, text: str) -> Outcome | None:
        try:
            outcome, ended = _outcome(spec, text)
        except _OtherRunError:
            return None
        self.completed += 1
        self.count.add(outcome.status)
        self.bar.advance(outcome.status, cached=ended < self.session)
        return outcome

    def _record_failures(self, failures: Sequence[Any]) -> None:
        """Record the outstanding runs of jobs that ended without computing them."""
        ended = []
        for failure in failures:
            status = _STATUS.get(failure.kind, "failed")
            job = job_text(failure.job_id, _text(failure.stdout), _text(failure.stderr))
            for uid in failure.uids:
                if self._outstanding.pop(uid, None) is None:
                    continue  # landed before its job failed, or recorded already
                ended.append((uid, status, failure.message, job))
                self.count.add(status)
                self.bar.advance(status, cached=False)
        if ended:
            self.index.mark_ended(ended)

    # -------------------------------------------------------------- the end of a round

    def _finish(self, specs: list[RunSpec], texts: list[str]) -> None:
        """Index the runs the round returned that the callbacks did not index yet."""
        outcomes = []
        misplaced = []
        for spec, text in zip(specs, texts, strict=True):
            if spec.run_id not in self._outstanding:
                continue
            outcome = self._outcome(spec, text)
            if outcome is None:
                misplaced.append(spec)
                continue
            del self._outstanding[spec.run_id]
            outcomes.append(outcome)
        self.index.store(outcomes)
        if misplaced:  # entries holding another run's record: computed again
            self.experiment._forget(misplaced)
            for outcome in run_chunk(self.experiment, misplaced, self.bar, self.session):
                self.count.add(outcome.status)
                self.index.store([outcome])
                self._outstanding.pop(outcome.run_id, None)
        self._outstanding.clear()

    def _leave(self, reason: str | None) -> None:
        """Record the round's runs not indexed as ``cancelled`` (with ``reason`` as error)."""
        left = list(self._outstanding)
        self._outstanding.clear()
        if reason is None:
            self.index.mark(left, "cancelled")
        else:
            self.index.mark_ended((run_id, "cancelled", reason, None) for run_id in left)
        self.cancelled += len(left)

    def _cancel_rest(self, todo: Sequence[int], done: int, reason: str | None) -> None:
        """Record the runs of ``todo[done:]`` (not handed to the backend) as ``cancelled``."""
        left = [self.experiment.specs.run_id(i) for i in todo[done:]]
        if reason is None:
            self.index.mark(left, "cancelled")
        else:
            self.index.mark_ended((run_id, "cancelled", reason, None) for run_id in left)
        self.cancelled += len(left)


def _text(path: Any) -> str | None:
    return None if path is None else str(path)
