"""What Slurm's controller says about jobs now: their states, limits, and the array size limit."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
from collections.abc import Iterable

#: States of a job that has ended for good. Any other state (PENDING, RUNNING, COMPLETING,
#: REQUEUED, REQUEUE_HOLD, SUSPENDED, ...) means the controller still has the job: a job that
#: Slurm requeued after a node failure or a preemption is PENDING again, never ended.
ENDED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
#: Slurm's own default of ``MaxArraySize``, used when the configuration cannot be read.
DEFAULT_MAX_ARRAY_SIZE = 1001


@dataclasses.dataclass(frozen=True)
class JobInfo:
    """What the controller holds for one job: its state and its time limit (``"1:00"``)."""

    state: str
    time_limit: str = ""


def _run(command: list[str]) -> str | None:
    """Return the output of ``command``, or None when it fails or does not answer."""
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except subprocess.CalledProcessError as error:
        # squeue fails for a list of ids that all expired: it knows none of them.
        return "" if "Invalid job id" in (error.stderr or "") else None
    except (OSError, subprocess.SubprocessError):
        return None


def _base_ids(job_ids: Iterable[str]) -> list[str]:
    # The array's own id lists every task of it (with --array), one squeue for them all.
    return sorted({job_id.split("_")[0] for job_id in job_ids if job_id.split("_")[0].isdigit()})


def controller_jobs(job_ids: Iterable[str]) -> dict[str, JobInfo] | None:
    """Return the controller's state and time limit of each job it knows among ``job_ids``.

    One ``squeue`` call for all of them. Array tasks are named ``<array id>_<index>``. The
    controller keeps ended jobs for ``MinJobAge`` (300 s by default); a job it does not know
    is missing from the answer. Returns None when Slurm does not answer.
    """
    wanted = set(job_ids)
    bases = _base_ids(wanted)
    if not bases:
        return {}
    listing = _run(
        [
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            "--format=%i %T %l",
            f"--jobs={','.join(bases)}",
        ]
    )
    if listing is None:
        return None
    found: dict[str, JobInfo] = {}
    shared: dict[str, JobInfo] = {}  # tasks of an array that its own record stands for
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        info = JobInfo(fields[1], fields[2] if len(fields) > 2 else "")
        if fields[0] in wanted:
            found[fields[0]] = info
            continue
        for job_id in _covered(fields[0], wanted):
            shared[job_id] = info
    return {**shared, **found}


def _covered(record: str, wanted: set[str]) -> list[str]:
    """Return the array tasks among ``wanted`` that one record of squeue stands for.

    Tasks of an array that never started are listed as the array itself, ``"123"`` (once
    cancelled, even with ``--array``) or ``"123_[0-5%2]"``.

    Examples:
        >>> sorted(_covered("123_[0-2,5%2]", {"123_1", "123_4", "123_5", "124_1"}))
        ['123_1', '123_5']
        >>> _covered("123", {"123_0", "12_0"})
        ['123_0']

    """
    base, _, indices = record.partition("_")
    tasks = [job_id for job_id in wanted if job_id.partition("_")[0] == base and "_" in job_id]
    if not indices:
        return tasks
    if not (indices.startswith("[") and indices.endswith("]")):
        return []
    listed: set[int] = set()
    for part in indices[1:-1].split("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (last.isdigit() or not last):
            listed.update(range(int(first), int(last or first) + 1))
    return [job_id for job_id in tasks if int(job_id.partition("_")[2] or -1) in listed]


def accounting_states(job_ids: Iterable[str]) -> dict[str, str]:
    """Return the state accounting (``sacct``) holds for each job it knows among ``job_ids``.

    For jobs the controller forgot (``MinJobAge`` after their end). ``CANCELLED by 0`` is
    shortened to ``CANCELLED``. Returns an empty dict when accounting does not answer.
    """
    wanted = set(job_ids)
    bases = _base_ids(wanted)
    if not bases:
        return {}
    listing = _run(
        [
            "sacct",
            "--noheader",
            "--parsable2",
            "-X",
            "--format=JobID,State",
            f"--jobs={','.join(bases)}",
        ]
    )
    found: dict[str, str] = {}
    shared: dict[str, str] = {}
    for line in (listing or "").splitlines():
        job_id, _, state = line.partition("|")
        if not state:
            continue
        if job_id in wanted:
            found[job_id] = state.split()[0]
            continue
        for task in _covered(job_id, wanted):
            shared[task] = state.split()[0]
    return {**shared, **found}


def job_states(job_ids: Iterable[str]) -> dict[str, str]:
    """Return Slurm's current state of each job it knows among ``job_ids``, in one ``squeue``.

    States are Slurm's words: ``"PENDING"``, ``"RUNNING"``, ``"COMPLETING"``,
    ``"COMPLETED"``, ``"FAILED"``, ``"CANCELLED"``, ``"TIMEOUT"``, ... A job id missing from
    the answer is unknown to the controller: it ended more than ``MinJobAge`` (300 s by
    default) ago, or never existed. Where Slurm does not answer, the answer is empty.

    Args:
        job_ids: Job ids, ``"123"`` for a job, ``"123_4"`` for a task of a job array.

    Examples:
        >>> job_states([])
        {}

    """
    found = controller_jobs(job_ids)
    return {job_id: info.state for job_id, info in (found or {}).items()}


@functools.lru_cache(maxsize=1)
def max_array_size() -> int:
    """Return Slurm's ``MaxArraySize`` (read once per process from ``scontrol show config``).

    A job array may hold indices ``0`` to ``MaxArraySize - 1``. Falls back to Slurm's
    default, 1001, when the configuration cannot be read.
    """
    listing = _run(["scontrol", "show", "config"])
    for line in (listing or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return max(2, int(value.strip()))
    return DEFAULT_MAX_ARRAY_SIZE


def cancel(job_ids: Iterable[str]) -> None:
    """Cancel the Slurm jobs ``job_ids`` (array tasks by their own id), in one ``scancel``."""
    ids = sorted(set(job_ids))
    if ids:
        _run(["scancel", *ids])
