"""The state a failed Slurm job is reported with: the controller's, once the job has ended.

A job that wrote its result file (submitit's record of an error, when its process was
stopped by a signal) can be seen before the controller has ended it: the controller still
shows ``COMPLETING`` or ``RUNNING``. The failure must wait for the ended state (``TIMEOUT``,
``CANCELLED``...) rather than report the passing one as a failure of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import submitit
from assay_backends import _waiting
from assay_backends._states import JobInfo


def _submission(tmp_path: Path) -> tuple[_waiting.Submission, submitit.SlurmJob[object]]:
    job: submitit.SlurmJob[object] = submitit.SlurmJob(folder=tmp_path, job_id="77_0")
    return _waiting.Submission("test", [job], [[]], time_limit="5", progress=False), job


def test_a_job_seen_completing_is_reported_with_the_state_it_ends_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["COMPLETING", "COMPLETING", "TIMEOUT"])
    looks: list[str] = []

    def controller(job_ids: list[str]) -> dict[str, JobInfo]:
        state = next(answers, "TIMEOUT")
        looks.append(state)
        return {job_ids[0]: JobInfo(state, "5:00")}

    monkeypatch.setattr(_waiting, "controller_jobs", controller)
    monkeypatch.setattr(_waiting, "ENDING_POLL_SECONDS", 0.0)
    submission, job = _submission(tmp_path)
    assert submission._fresh_state(job, None) == "TIMEOUT"
    assert looks == ["COMPLETING", "COMPLETING", "TIMEOUT"]


def test_a_job_that_never_shows_an_ended_state_keeps_the_last_one_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        _waiting, "controller_jobs", lambda ids: {ids[0]: JobInfo("COMPLETING", "5:00")}
    )
    monkeypatch.setattr(_waiting, "ENDING_POLL_SECONDS", 0.0)
    monkeypatch.setattr(_waiting, "ENDING_LOOKS", 3)
    submission, job = _submission(tmp_path)
    assert submission._fresh_state(job, None) == "COMPLETING"
