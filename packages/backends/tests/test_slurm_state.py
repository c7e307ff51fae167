"""What a Slurm job says about itself once it ended: its state, and how soon the run sees it.

Slurm's accounting (``sacct``, the only source submitit asks) learns about the tasks of a job
array a few seconds after they ended, and submitit asks it less and less often as a sweep
goes on (up to every 10 minutes). These tests pin what assay does about both.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import submitit
from assay_backends import JobError, _submitit_base
from assay_steps import Step
from backends_testkit import SlowWhileFlag, slurm

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]

#: States a job that just wrote its result can be in, as Slurm spells them.
ENDING = {"RUNNING", "COMPLETING", "COMPLETED"}


class Square(Step):
    def _run(self, value: int) -> int:
        return value * value


def test_the_job_of_an_item_just_computed_reports_its_state_while_sacct_lags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = Square(infra=slurm(tmp_path, max_jobs=3))
    assert list(step.run_many(range(3))) == [0, 1, 4]
    # For a few seconds after its tasks ended, sacct lists a job array as one record without
    # task ids, or not at all: it knows nothing yet of "<id>_0". Stand for that window.
    monkeypatch.setattr(type(submitit.SlurmJob.watcher), "read_info", lambda self, text: {})
    submitit.SlurmJob.watcher.clear()
    # The jobs this process submitted, then the same jobs rebuilt from their folders.
    own = [step.lookup(value).job() for value in range(3)]
    monkeypatch.setattr(_submitit_base, "_SUBMITTED", OrderedDict())
    rebuilt = [step.lookup(value).job() for value in range(3)]
    for job in own + rebuilt:
        assert isinstance(job, submitit.SlurmJob)
        assert job.state in ENDING, f"job {job.job_id}: {job.state}"


def test_a_job_that_ended_long_after_submission_is_noticed_without_submitits_next_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Late in a sweep, submitit asks sacct only every 10 minutes: stand for that by never
    # letting its periodic look happen (a forced look still does).
    watcher_class = type(submitit.SlurmJob.watcher)
    original = watcher_class.update_if_long_enough

    def only_forced(self: Any, mode: str) -> None:
        if mode == "force":
            original(self, mode)

    monkeypatch.setattr(watcher_class, "update_if_long_enough", only_forced)
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

    # A daemon: without the fix it would wait forever for a job that no longer exists.
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while step.lookup(1).status != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert step.lookup(1).status == "running", "the job did not start"
    job = step.lookup(1).job()
    assert job is not None
    subprocess.run(["scancel", str(job.job_id)], check=True)
    # A guard against hanging, not a measure of speed: the fix notices within seconds.
    worker.join(60)
    flag.unlink()
    assert not worker.is_alive(), "the run still waits for a cancelled job"
    error = outcome.get("error")
    assert isinstance(error, JobError), outcome
    assert "CANCELLED" in str(error)
    assert step.lookup(1).status is None


def test_a_submission_that_slurm_refuses_raises_a_job_error_naming_the_fields(
    tmp_path: Path,
) -> None:
    step = Square(infra=slurm(tmp_path, partition="no-such-partition", timeout_min=5))
    with pytest.raises(JobError) as raised:
        list(step.run_many([1, 2]))
    message = str(raised.value)
    assert "invalid partition" in message.lower()  # Slurm's own reason
    assert "partition='no-such-partition'" in message  # the field and its value
    assert "timeout_min=5" in message
    assert "Square" in message
    assert step.lookup(1).status is None
    assert step.lookup(1).job() is None, "no job was attached to an item never submitted"
