"""Waiting for the jobs of a submission: results as they land, failures collected, not raised early.

A Slurm job has ended when its result files are there, or when the controller (asked with
one ``squeue`` for the whole submission) holds it in an ended state at two looks in a row;
a job it still has queued or running, a requeued one included, is waited for. The state in a
failure's message is the controller's at that moment, never a cached one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from assay_steps import ItemTask

from ._failures import JobFailure, JobsFailed, describe, kind_of, reason
from ._progress import ProgressBar
from ._states import ENDED_STATES, JobInfo, accounting_states, cancel, controller_jobs
from ._tasks import item_count
from ._watch import WATCH_SECONDS, Watcher

#: Longest pause between two looks at the result files of a submission's jobs during its
#: first minute (then once a second).
POLL_SECONDS = 0.2
#: Pause between two ``squeue`` calls for the jobs without a result (first minute, later).
QUEUE_POLL_SECONDS = (2.0, 5.0)
#: Pause before a second look at a job that the controller showed ended without a result.
CONFIRM_SECONDS = 1.0
#: Looks after which a job that neither the controller nor accounting knows counts as ended.
UNKNOWN_LOOKS = 3
#: Looks, and the pause between two, for the ended state of a failed job the controller
#: still shows ending (see ``Submission._ended_info``).
ENDING_LOOKS = 30
ENDING_POLL_SECONDS = 0.5


class Submission:
    """The jobs of one submission and what each was given, waited for until all ended."""

    def __init__(
        self,
        name: str,
        jobs: Sequence[submitit.Job[Any]],
        shards: Sequence[list[ItemTask]],
        *,
        time_limit: str,
        progress: bool,
    ) -> None:
        self.name = name
        self.waiting: dict[str, tuple[submitit.Job[Any], list[ItemTask]]] = {
            str(job.job_id): (job, piece) for job, piece in zip(jobs, shards, strict=True)
        }
        self.time_limit = time_limit
        self.progress = progress
        self.failures: list[JobFailure] = []
        self.escaped: list[BaseException] = []
        self.cancelled: set[str] = set()  # cancelled by this process (watch)
        self._suspects: dict[str, float] = {}  # job id -> when first seen ended, no result
        self._unknown: dict[str, int] = {}
        self._last: dict[str, str] = {}  # job id -> the controller's state at the last look
        self._limits: dict[str, str] = {}  # job id -> the controller's time limit
        self._started = time.monotonic()
        self._next_queue_look = self._started

    # ------------------------------------------------------------------ the loop

    def wait(self) -> None:
        """Wait until every job ended; raise what went wrong (see the module docstring).

        Raises:
            BaseException: An exception escaping a task in a job (the first), as it was.
            JobsFailed: One or more jobs ended without computing their items.

        """
        watcher = Watcher()
        tasks = [task for _, piece in self.waiting.values() for task in piece]
        with ProgressBar(item_count(tasks), self.name, self.progress) as bar:
            delay = 0.05
            while self.waiting:
                ended = self._look()
                for job_id, state in ended:
                    job, piece = self.waiting.pop(job_id)
                    failure = self._outcome(job, piece, state)
                    if failure is not None:
                        self.failures.append(failure)
                        watcher.add(failure)
                    bar.advance(item_count(piece))
                try:
                    watcher.tick(bool(ended))
                except BaseException:
                    self._cancel_all()
                    raise
                if self.waiting and not ended:
                    time.sleep(delay)
                    # A result file is one stat away: poll briskly while short jobs are
                    # likely to end, then settle to once a second.
                    cap = POLL_SECONDS if time.monotonic() - self._started < 60 else 1.0
                    delay = min(2 * delay, WATCH_SECONDS if watcher.active else cap, cap)
        self._raise()

    def _raise(self) -> None:
        if self.escaped:
            first = self.escaped[0]
            if self.failures and hasattr(first, "add_note"):
                first.add_note(str(JobsFailed(self.failures)))
            raise first
        if self.failures:
            raise JobsFailed(self.failures)

    # ------------------------------------------------------------------ which jobs ended

    def _look(self) -> list[tuple[str, str | None]]:
        """Return the jobs that ended since the last look, with the controller's state."""
        ended: list[tuple[str, str | None]] = []
        slurm: list[str] = []
        for job_id, (job, _) in self.waiting.items():
            if isinstance(job, submitit.SlurmJob):
                if _results_written(job):
                    ended.append((job_id, None))
                else:
                    slurm.append(job_id)
            elif job.done():  # a local process ended, or a debug job ran
                ended.append((job_id, None))
        now = time.monotonic()
        if slurm and now >= self._next_queue_look:
            ended += self._ended_in_queue(slurm, now)
            pause = QUEUE_POLL_SECONDS[0 if now - self._started < 60 else 1]
            if self._suspects:
                pause = min(pause, CONFIRM_SECONDS)
            self._next_queue_look = time.monotonic() + pause
        return ended

    def _ended_in_queue(self, job_ids: list[str], now: float) -> list[tuple[str, str | None]]:
        known = controller_jobs(job_ids)
        if known is None:  # Slurm does not answer: look again later
            return []
        forgotten = [job_id for job_id in job_ids if job_id not in known]
        if forgotten:
            for job_id, state in accounting_states(forgotten).items():
                known[job_id] = JobInfo(state)
        ended: list[tuple[str, str | None]] = []
        for job_id in job_ids:
            info = known.get(job_id)
            if info is None:
                self._unknown[job_id] = self._unknown.get(job_id, 0) + 1
                if self._unknown[job_id] >= UNKNOWN_LOOKS:
                    ended.append((job_id, self._vanished_state(job_id)))
                continue
            self._unknown.pop(job_id, None)
            self._last[job_id] = info.state
            if info.state not in ENDED_STATES:
                self._suspects.pop(job_id, None)  # queued or running (again, if requeued)
                continue
            if info.time_limit:
                self._limits[job_id] = info.time_limit
            if info.state == "COMPLETED":
                ended.append((job_id, info.state))  # its result file is on its way
                continue
            # Seen ended twice, a second apart: not a passing state of a job being requeued.
            first = self._suspects.setdefault(job_id, now)
            if now - first >= CONFIRM_SECONDS:
                ended.append((job_id, info.state))
        return ended

    def _vanished_state(self, job_id: str) -> str:
        """Return the state of a job that neither the controller nor accounting knows.

        A task of an array cancelled before it started leaves no record anywhere: Slurm
        drops it from the array's pending remainder. A job never seen running, with no log,
        was cancelled; of any other, nothing can be said.
        """
        job = self.waiting[job_id][0]
        started = self._last.get(job_id, "PENDING") != "PENDING" or Path(job.paths.stderr).exists()
        return "UNKNOWN" if started else "CANCELLED"

    # ------------------------------------------------------------------ what a job left

    def _outcome(
        self, job: submitit.Job[Any], piece: list[ItemTask], state: str | None
    ) -> JobFailure | None:
        """Read a finished job's results; return its failure, if it failed."""
        if isinstance(job, submitit.LocalJob):
            # submitit waits up to 15 s for a result file that a slow network file system may
            # not show yet. A local job's process wrote it before exiting, on this machine:
            # once the job is done, a missing file will never come.
            job._results_timeout_s = 0
        if state is not None and state != "COMPLETED" and not _results_written(job):
            # Ended without a result, as the controller says: none will come, and submitit
            # would wait for one (15 s) before saying so.
            return self._failure(job, piece, state, _log_tail(job))
        try:
            # One return per task (``tasks_per_node``): every task runs the shard's items.
            returned = job.results()
        except (
            submitit.core.utils.UncompletedJobError,
            submitit.core.utils.FailedJobError,
        ) as error:
            return self._failure(job, piece, state, str(error))
        escaped = next((value for value in returned if isinstance(value, BaseException)), None)
        if escaped is not None:
            if hasattr(escaped, "add_note"):
                escaped.add_note(f"raised in job {job.job_id}; logs: {job.paths.stderr}")
            self.escaped.append(escaped)
        return None

    def _failure(
        self, job: submitit.Job[Any], piece: list[ItemTask], state: str | None, text: str
    ) -> JobFailure:
        job_id = str(job.job_id)
        state = self._fresh_state(job, state)
        limit = self._limits.get(job_id, self.time_limit)
        logs: tuple[Path, Path] | None = (Path(job.paths.stdout), Path(job.paths.stderr))
        if not isinstance(job, submitit.SlurmJob | submitit.LocalJob):
            logs = None  # a debug job ran in this process: no logs of its own
        steps = sorted({type(task.step).__name__ for task in piece})
        message = describe(job_id, state, item_count(piece), steps, limit, reason(text), logs)
        kind_state = state.split()[0] if state else "FAILED"
        return JobFailure(
            job_id=job_id,
            state=kind_state,
            kind=kind_of(kind_state),
            message=message,
            uids=tuple(uid for task in piece for uid in task.uids),
            stdout=logs[0] if logs else None,
            stderr=logs[1] if logs else None,
        )

    def _fresh_state(self, job: submitit.Job[Any], state: str | None) -> str:
        """Return the job's state now: the controller's (Slurm), or what this process saw."""
        job_id = str(job.job_id)
        if isinstance(job, submitit.SlurmJob):
            if state is None or state == "COMPLETED":
                info = self._ended_info(job_id)
                if info is not None:
                    if info.time_limit:
                        self._limits[job_id] = info.time_limit
                    return info.state
                return accounting_states([job_id]).get(job_id, state or "UNKNOWN")
            return state
        if job_id in self.cancelled:
            return "CANCELLED"
        if isinstance(job, submitit.LocalJob):
            local = str(job.state)
            if self._local_limit_reached():
                return "TIMEOUT"
            return "INTERRUPTED" if local == "INTERRUPTED" else "FAILED"
        return "FAILED"

    def _ended_info(self, job_id: str) -> JobInfo | None:
        """Return what the controller holds of a job that left its result, once it ended.

        A job stopped by a signal (its time limit, a cancellation) can write its result file
        before the controller has ended it: the controller shows ``COMPLETING`` or
        ``RUNNING`` for a moment. Its ended state (``TIMEOUT``...) is what says what happened,
        so it is waited for, ``ENDING_LOOKS`` looks at most; then the last state seen is kept.
        """
        info = None
        for look in range(ENDING_LOOKS):
            info = (controller_jobs([job_id]) or {}).get(job_id)
            if info is None or info.state in ENDED_STATES:
                return info
            if look + 1 < ENDING_LOOKS:
                time.sleep(ENDING_POLL_SECONDS)
        return info

    def _local_limit_reached(self) -> bool:
        minutes = _minutes(self.time_limit)
        return minutes is not None and time.monotonic() - self._started >= 60 * minutes - 1

    # ------------------------------------------------------------------ cancelling

    def _cancel_all(self) -> None:
        """Cancel every job not ended yet and wait until none of them is active."""
        slurm = [i for i, (job, _) in self.waiting.items() if isinstance(job, submitit.SlurmJob)]
        cancel(slurm)
        for job_id, (job, _) in self.waiting.items():
            self.cancelled.add(job_id)
            if isinstance(job, submitit.LocalJob):
                job.cancel(check=False)
        delay = 0.1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            local = [job for job, _ in self.waiting.values() if isinstance(job, submitit.LocalJob)]
            known = controller_jobs(slurm) if slurm else {}
            active = [i for i, info in (known or {}).items() if info.state not in ENDED_STATES]
            if not active and not any(not job.done() for job in local):
                return
            time.sleep(delay)
            delay = min(2 * delay, 1.0)


def _results_written(job: submitit.Job[Any]) -> bool:
    """Whether every task of ``job`` wrote its result file (no scheduler call)."""
    tasks = range(job.num_tasks)
    if len(tasks) <= 1:
        return job.paths.result_pickle.exists()
    return all(job.task(task).paths.result_pickle.exists() for task in tasks)


def _log_tail(job: submitit.Job[Any], lines: int = 40) -> str:
    """Return the end of a job's stderr log (where Slurm says why it ended), or ""."""
    try:
        with open(job.paths.stderr, "rb") as stream:
            stream.seek(0, 2)
            stream.seek(max(0, stream.tell() - 16384))
            text = stream.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _minutes(limit: str) -> float | None:
    try:
        return float(limit)
    except ValueError:
        return None
