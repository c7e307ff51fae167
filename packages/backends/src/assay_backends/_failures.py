"""Jobs that ended without computing their items: one failure each, raised together.

Each job gives one [`JobFailure`][assay_backends.JobFailure]; they are raised together as
[`JobsFailed`][assay_backends.JobsFailed].
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ._jobs import JobError

Kind = Literal["timeout", "cancelled", "failed"]


@dataclasses.dataclass(frozen=True)
class JobFailure:
    """A job that ended without computing (all) its items.

    Attributes:
        job_id: ``"123_4"`` for a task of a Slurm job array, ``"123"`` for a job, a process id
            for a local job.
        state: The scheduler's state of the ended job: ``"TIMEOUT"``, ``"CANCELLED"``,
            ``"FAILED"``, ``"OUT_OF_MEMORY"``, ``"NODE_FAIL"``, ... (local jobs:
            ``"FAILED"``, ``"INTERRUPTED"``, ``"CANCELLED"``).
        kind: ``"timeout"`` (it reached its time limit), ``"cancelled"`` (someone cancelled
            it) or ``"failed"`` (anything else: killed, out of memory, node failure...).
        message: One readable line saying what happened, what stays uncached and where the
            logs are.
        uids: Uids of every item the job was given; some may have been computed before it
            ended (their entries are cached).
        stdout: The job's standard output log, when it has one.
        stderr: The job's standard error log, when it has one.

    Examples:
        >>> failure = JobFailure("12_3", "TIMEOUT", "timeout", "job 12_3 ...", ("a", "b"))
        >>> failure.kind
        'timeout'

    """

    job_id: str
    state: str
    kind: Kind
    message: str
    uids: tuple[str, ...] = ()
    stdout: Path | None = None
    stderr: Path | None = None


class JobsFailed(JobError):
    """One or more jobs of a submission ended without computing their items.

    Raised once every job of the submission has ended: the items of the other jobs are
    computed and cached. The items of the failed jobs that were not computed stay uncached
    (never half-written): run again to compute them.

    Attributes:
        failures: One [`JobFailure`][assay_backends.JobFailure] per failed job, in submission order.

    Examples:
        >>> failure = JobFailure("7", "CANCELLED", "cancelled", "job 7 was cancelled")
        >>> error = JobsFailed([failure, failure])
        >>> str(error)
        'job 7 was cancelled (and 1 more failed job)'

    """

    def __init__(self, failures: Sequence[JobFailure]) -> None:
        if not failures:
            raise ValueError("JobsFailed needs at least one JobFailure, got none")
        self.failures: tuple[JobFailure, ...] = tuple(failures)
        more = len(self.failures) - 1
        tail = f" (and {more} more failed job{'s' if more > 1 else ''})" if more else ""
        super().__init__(self.failures[0].message + tail)

    def __reduce__(self) -> tuple[type[JobsFailed], tuple[tuple[JobFailure, ...]]]:
        return type(self), (self.failures,)


def kind_of(state: str) -> Kind:
    """Return the kind of failure a job's final ``state`` means.

    Examples:
        >>> kind_of("TIMEOUT"), kind_of("CANCELLED by 0"), kind_of("OUT_OF_MEMORY")
        ('timeout', 'cancelled', 'failed')

    """
    if state.startswith("TIMEOUT"):
        return "timeout"
    if state.startswith("CANCELLED"):
        return "cancelled"
    return "failed"


def describe(
    job_id: str,
    state: str,
    n_items: int,
    steps: Sequence[str],
    time_limit: str,
    reason: str,
    logs: tuple[Path, Path] | None,
) -> str:
    """Return the one-line message of a failed job.

    See [`JobFailure`][assay_backends.JobFailure].
    """
    kind = kind_of(state)
    if kind == "timeout":
        what = f"reached its time limit of {_limit_text(time_limit)} ({state})"
    elif kind == "cancelled":
        what = f"was cancelled ({state})"
    else:
        what = f"ended without computing its items ({state})"
    # The telling line of the job's own output, unless it only repeats the state.
    said = f": {reason}" if reason and kind == "failed" else ""
    where = f"; logs: {logs[0]} and {logs[1]}" if logs is not None else ""
    return (
        f"job {job_id} {what}{said}; its {n_items} item(s) of {', '.join(steps)} not computed "
        f"stay uncached; run again to compute them{where}"
    )


def _limit_text(limit: str) -> str:
    """Say Slurm's time limit (``"1:00"``, ``"1-00:00:00"``, minutes) in words.

    Examples:
        >>> _limit_text("1:00"), _limit_text("2:30:00"), _limit_text("5")
        ('1 min', '2 h 30 min', '5 min')

    """
    if not limit or limit in {"UNLIMITED", "INVALID", "NOT_SET"}:
        return "the job" if not limit else limit.lower()
    if limit.isdigit():  # a bare number of minutes, as given to sbatch
        return f"{int(limit)} min"
    days, _, clock = limit.rpartition("-")
    parts = [int(part) for part in clock.split(":") if part.isdigit()]
    hours, minutes, seconds = [0, 0, 0, *parts][-3:]
    words = [f"{days} d"] if days else []
    words += [f"{hours} h"] if hours else []
    words += [f"{minutes} min"] if minutes or not (hours or days or seconds) else []
    words += [f"{seconds} s"] if seconds else []
    return " ".join(words)


def reason(text: str) -> str:
    """Return the telling line of a submitit error: Slurm's verdict, submitit's, or the last.

    submitit's own log lines ("submitit INFO (...) - Loading pickle: ..."), which it copies
    from the job's streams, and its separators are never the reason.
    """
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not _SUBMITIT_LOG.match(line.strip()) and set(line.strip()) != {"-"}
    ]
    # "*** JOB 12 ON node CANCELLED AT ... ***" (slurmstepd), "... not requeued because: ...".
    for marker in ("*** JOB", "because:", "Error:"):
        for line in reversed(lines):
            if marker in line:
                return line
    if "has not produced any output" in text:
        # The process died without a word from Python (os._exit, a crash in native code, the
        # out-of-memory killer): what it printed last, if anything, is the best clue.
        said = [line for line in lines if not line.startswith(_SUBMITIT_HEADERS)]
        ended = "its process ended without writing a result"
        return f"{ended}; its last output: {said[-1]}" if said else ended
    return lines[-1] if lines else ""


#: A line that submitit's logger wrote into a job's streams.
_SUBMITIT_LOG = re.compile(r"submitit (DEBUG|INFO|WARNING|ERROR|CRITICAL) \(")
#: The lines submitit puts around a job's streams when the job wrote no result.
_SUBMITIT_HEADERS = (
    "Job ",
    "has not produced any output",
    "Error stream produced",
    "No error stream produced",
    "No output/error stream produced",
)
