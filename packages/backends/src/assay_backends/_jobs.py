"""Jobs attached to items: finding those still active, so that no item is submitted twice."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from assay_steps import ItemTask

HOST = socket.gethostname()
#: Longest pause between two polls of jobs that another process submitted.
MAX_POLL_SECONDS = 5.0


class JobError(RuntimeError):
    """A job ended without computing its items (time limit, cancelled, killed, node failure).

    Also raised when a worker process of a ``ProcessPool`` dies (killed, out of memory).

    The items it did not compute stay uncached, never half-written: run again to compute them.
    """


def active_slurm_jobs() -> set[str] | None:
    """Ids of the jobs Slurm still has queued or running (array tasks as ``<id>_<index>``).

    Returns None when Slurm does not answer.
    """
    try:
        listing = subprocess.run(
            ["squeue", "--noheader", "--array", "--format=%i"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return set(listing.split())


def controller_state(job_id: str) -> str | None:
    """Return the state Slurm's controller holds for ``job_id`` (``"COMPLETED"``, ...).

    The controller answers at once, ended jobs included for ``MinJobAge`` (300 s by default)
    after their end; returns None when it does not know the job (any more) or does not answer.
    """
    try:
        listing = subprocess.run(
            ["squeue", "--noheader", "--states=all", "--format=%i %T", f"--jobs={job_id}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):  # an expired job id fails too
        return None
    for line in listing.splitlines():
        found = line.split()
        if len(found) == 2 and found[0] == job_id:
            return found[1]
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        pass
    # A zombie has ended; only its parent has not collected it yet.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc here: trust the signal test
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class ActiveJobs:
    """Which job references name a job that is still queued or running.

    Slurm is asked once per instance (one ``squeue`` call), local jobs are checked by pid on
    the host that started them.
    """

    def __init__(self) -> None:
        self._slurm: set[str] | None = None
        self._asked_slurm = False

    def is_active(self, ref: dict[str, Any]) -> bool:
        """Return whether the job ``ref`` names is still queued or running."""
        job_id = str(ref.get("job_id", ""))
        cluster = ref.get("cluster")
        if _result_written(ref):
            return False
        if cluster == "slurm":
            if not self._asked_slurm:
                self._slurm, self._asked_slurm = active_slurm_jobs(), True
            return self._slurm is not None and job_id in self._slurm
        if cluster == "local":
            return ref.get("host") == HOST and job_id.isdigit() and _pid_alive(int(job_id))
        return False  # debug jobs run inside their caller and end with it


def _result_written(ref: dict[str, Any]) -> bool:
    folder = str(ref.get("folder", "")).replace("%j", str(ref.get("job_id", "")))
    return bool(folder) and any(Path(folder).glob(f"{ref.get('job_id')}_*_result.pkl"))


def wait_until_inactive(refs: Iterable[dict[str, Any]]) -> None:
    """Block until none of the jobs named by ``refs`` is queued or running any more."""
    pending = list({(r.get("cluster"), str(r.get("job_id"))): r for r in refs}.values())
    delay = 0.2
    while pending:
        checker = ActiveJobs()
        pending = [ref for ref in pending if checker.is_active(ref)]
        if pending:
            time.sleep(delay)
            delay = min(2 * delay, MAX_POLL_SECONDS)


def skip_running(tasks: list[ItemTask]) -> tuple[list[ItemTask], list[dict[str, Any]]]:
    """Drop items being computed elsewhere: locked by a live process, or in an active job.

    Returns the remaining tasks and the references of the active jobs to wait for.
    """
    checker = ActiveJobs()
    kept: list[ItemTask] = []
    elsewhere: list[dict[str, Any]] = []
    for task in tasks:
        if task.force:  # force and retry recompute whatever is cached
            kept.append(task)
            continue
        running = task.running_uids()  # the steps layer waits for locked items itself
        keep: list[int] = []
        for index, uid in enumerate(task.uids):
            if uid in running:
                continue
            ref = task.job_ref(uid)
            if ref is not None and checker.is_active(ref):
                elsewhere.append(ref)
                continue
            keep.append(index)
        if len(keep) == len(task.uids):
            kept.append(task)
        elif keep:
            kept.append(_subset(task, keep))
    return kept, elsewhere


def _subset(task: ItemTask, indices: list[int]) -> ItemTask:
    return dataclasses.replace(
        task, uids=[task.uids[i] for i in indices], values=[task.values[i] for i in indices]
    )
