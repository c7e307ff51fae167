"""Failures of local jobs: the others' items are computed, then JobsFailed; watch stops it all."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from assay_backends import JobError, JobFailure, JobsFailed, job_logs, watch
from assay_steps import Step
from backends_testkit import HoldsWhileFlag

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class ExitsAt(Step):
    """Ends its process without a word (as the out-of-memory killer would) at one input."""

    at: int

    def _run(self, value: int) -> int:
        if value == self.at:
            os._exit(3)
        return value * 10


def local(folder: Path, **fields: Any) -> dict[str, Any]:
    return {"backend": "LocalProcess", "folder": folder, **fields}


def test_a_failed_job_does_not_stop_the_others_and_is_reported_at_the_end(tmp_path: Path) -> None:
    step = ExitsAt(at=2, infra=local(tmp_path, max_jobs=4))
    with pytest.raises(JobsFailed) as raised:
        step.run_many([1, 2, 3, 4])
    # The other jobs' items were computed in the same call.
    assert [step.lookup(v).status for v in (1, 2, 3, 4)] == ["success", None, "success", "success"]
    (failure,) = raised.value.failures
    assert isinstance(raised.value, JobError), "except JobError keeps working"
    assert failure.kind == "failed"
    assert failure.uids == (step.lookup(2).uid,)
    assert failure.job_id in failure.message
    assert "ended without computing its items" in failure.message
    assert "run again" in failure.message
    assert failure.stdout is not None
    assert failure.stdout.exists()
    assert failure.stderr is not None
    assert str(failure.stderr) in failure.message
    assert str(raised.value) == failure.message
    ref = step.lookup(2).paths.job_folder
    assert ref.is_dir()


def test_jobs_failed_names_how_many_more_failed() -> None:
    one = JobFailure("1", "FAILED", "failed", "job 1 ended")
    assert str(JobsFailed([one, one, one])) == "job 1 ended (and 2 more failed jobs)"
    with pytest.raises(ValueError, match="at least one"):
        JobsFailed([])


def test_watch_sees_each_failure_once_while_the_jobs_run(tmp_path: Path) -> None:
    calls: list[list[JobFailure]] = []
    step = ExitsAt(at=1, infra=local(tmp_path, max_jobs=3))
    with watch(lambda failures: calls.append(list(failures))), pytest.raises(JobsFailed):
        step.run_many([1, 2, 3])
    seen = [failure for batch in calls for failure in batch]
    assert len(seen) == 1
    assert seen[0].uids == (step.lookup(1).uid,)
    assert len(calls) >= 2, "called after each job ended, failed or not"


class Stop(Exception):
    """Raised by a watch callback."""


def test_a_watch_callback_that_raises_cancels_the_jobs_and_its_error_propagates(
    tmp_path: Path,
) -> None:
    flag = tmp_path / "hold"
    flag.touch()
    step = HoldsWhileFlag(flag=flag, infra=local(tmp_path / "c", max_jobs=3))
    stop = Stop("too many failures")

    def callback(failures: Sequence[JobFailure]) -> None:
        raise stop

    start = time.monotonic()
    with watch(callback), pytest.raises(Stop) as raised:
        step.run_many([1, 2, 3])
    assert raised.value is stop, "the very exception, not wrapped"
    assert time.monotonic() - start < 30
    jobs = [step.lookup(v).job() for v in (1, 2, 3)]
    assert all(job is not None and job.done() for job in jobs), "no job is still running"
    flag.unlink()
    time.sleep(0.3)
    assert [step.lookup(v).status for v in (1, 2, 3)] == [None, None, None]
    assert list(step.run_many([1, 2, 3])) == [1, 2, 3], "a rerun computes them"


def test_watch_is_off_outside_its_block_and_checks_its_callback(tmp_path: Path) -> None:
    calls: list[object] = []
    with watch(calls.append):
        pass
    step = HoldsWhileFlag(flag=tmp_path / "absent", infra=local(tmp_path / "c"))
    assert list(step.run_many([1])) == [1]
    assert calls == []
    with pytest.raises(TypeError, match="callback=3: expected a callable"), watch(3):  # type: ignore[arg-type]
        pass


def test_job_logs_names_the_files_of_an_items_job(tmp_path: Path) -> None:
    step = ExitsAt(at=-1, infra=local(tmp_path))
    step.run(5)
    ref = step.lookup(5).paths.job_folder
    refs = [p for p in ref.iterdir()]
    assert refs
    job = step.lookup(5).job()
    assert job is not None
    import json

    found = job_logs(json.loads(refs[0].read_text())["ref"])
    assert found == (job.paths.stdout, job.paths.stderr)
    assert found[0].exists()
    assert job_logs({"cluster": "debug", "job_id": "1", "folder": "x"}) is None
    assert job_logs("not a ref") is None
