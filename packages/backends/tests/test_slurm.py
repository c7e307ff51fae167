"""Slurm and Auto against a real cluster (scripts/slurm/start.sh); skipped where none answers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import submitit
from assay_backends import JobError
from assay_steps import Step
from backends_testkit import SlowWhileFlag, job_ids, slurm

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


class WhereAmI(Step):
    """Returns the input with the Slurm job that computed it."""

    def _run(self, value: int) -> tuple[int, str | None]:
        return value, os.environ.get("SLURM_JOB_ID")


class Fails(Step):
    def _run(self, value: int) -> int:
        if value == 1:
            raise ZeroDivisionError(f"item {value} divides by zero")
        return value


def test_a_single_job_runs_on_slurm_and_lookup_returns_it(tmp_path: Path) -> None:
    step = WhereAmI(infra=slurm(tmp_path, job_name="assay-single", timeout_min=5))
    value, slurm_job = step.run(3)
    assert value == 3
    assert slurm_job is not None, "the item ran inside a Slurm job"
    handle = step.lookup(3)
    job = handle.job()
    assert isinstance(job, submitit.SlurmJob)
    assert job.paths.folder.is_relative_to(handle.paths.logs_folder)
    assert job.paths.stdout.exists()
    # Rebuilt from its folder by a new instance, as after a restart.
    rebuilt = WhereAmI(infra=slurm(tmp_path)).lookup(3).job()
    assert isinstance(rebuilt, submitit.SlurmJob)
    assert rebuilt.job_id == job.job_id


def test_a_job_array_packs_the_items_into_max_jobs_jobs_and_a_rerun_reuses_the_cache(
    tmp_path: Path,
) -> None:
    step = WhereAmI(infra=slurm(tmp_path, max_jobs=3))
    results = list(step.run_many(range(10)))
    assert [value for value, _ in results] == list(range(10))
    ids = job_ids(step.lookup(0).paths.step_folder)
    assert len(ids) == 3
    assert len({job_id.split("_")[0] for job_id in ids}) == 1, "one array of 3 tasks"
    assert len({slurm_job for _, slurm_job in results}) == 3

    start = time.monotonic()
    again = WhereAmI(infra=slurm(tmp_path, max_jobs=3))
    assert list(again.run_many(range(10))) == results
    assert time.monotonic() - start < 1.0, "a rerun reads the cache and submits nothing"
    assert job_ids(step.lookup(0).paths.step_folder) == ids


def test_min_items_per_job_combines_items(tmp_path: Path) -> None:
    step = WhereAmI(infra=slurm(tmp_path, min_items_per_job=3))
    results = list(step.run_many(range(6)))
    assert len(job_ids(step.lookup(0).paths.step_folder)) == 2
    assert len({slurm_job for _, slurm_job in results}) == 2


def test_an_error_inside_a_job_surfaces_with_its_traceback(
    tmp_path: Path, notes_of: Callable[[BaseException], str]
) -> None:
    step = Fails(infra=slurm(tmp_path, max_jobs=1))
    with pytest.raises(ZeroDivisionError, match="item 1 divides by zero") as raised:
        list(step.run_many([0, 1]))
    notes = notes_of(raised.value)
    assert "Traceback" in notes
    assert "in _run" in notes
    assert step.lookup(1).status == "error"
    assert step.lookup(0).status == "success"


def test_a_cancelled_job_leaves_its_items_uncached_and_a_rerun_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # submitit waits 15 s for the result file of a job that ended without one.
    monkeypatch.setattr(submitit.SlurmJob, "_results_timeout_s", 1)
    flag = tmp_path / "hold"
    flag.touch()
    step = SlowWhileFlag(flag=flag, infra=slurm(tmp_path / "cache", max_jobs=1))
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = list(step.run_many([1, 2]))
        except Exception as error:
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while step.lookup(1).status != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert step.lookup(1).status == "running", "the job did not start"
    job = step.lookup(1).job()
    assert job is not None
    subprocess.run(["scancel", str(job.job_id)], check=True)
    worker.join(90)
    assert not worker.is_alive()
    error = outcome.get("error")
    assert isinstance(error, JobError), outcome
    assert "CANCELLED" in str(error)
    assert step.lookup(1).status is None
    assert step.lookup(2).status is None
    flag.unlink()
    assert list(step.run_many([1, 2])) == [101, 102]


def test_auto_picks_slurm_when_sbatch_is_available(tmp_path: Path) -> None:
    step = WhereAmI(infra={"backend": "Auto", "folder": tmp_path, "partition": "debug"})
    value, slurm_job = step.run(4)
    assert value == 4
    assert slurm_job is not None
    assert isinstance(step.lookup(4).job(), submitit.SlurmJob)
