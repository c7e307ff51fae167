"""A sweep on a backend that submits jobs: one submission, live index, failed jobs, policy.

``FakeJobs`` is a backend that runs its "jobs" inline, one after the other, and reports to the
sweep the way the submitit backends do (``assay_backends.watch``): a callback after each job,
and ``JobsFailed`` at the end for the jobs told to fail. The real backends are tested on a
real cluster in ``test_slurm_sweep.py``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pydantic
import pytest
from assay_steps import Backend, ItemTask

import assay._sweep_jobs as sweep_jobs
from assay import Experiment, Results, explicit
from assay._index import ResultsIndex

OPS = """
from assay_ops import operation


@operation
def square(params, capture):
    if params["i"] in params.get("bad", ()):
        raise ValueError(f"run {params['i']} refuses")
    capture.metric("y", params["i"] ** 2)
"""


class FakeJobs(Backend):
    """Runs items in "jobs" of ``per_job`` items, inline; the jobs of ``failing`` fail."""

    submits_jobs: ClassVar[bool] = True
    new_interpreter: ClassVar[bool] = False
    calls: ClassVar[list[int]] = []  # items per _execute call
    seen: ClassVar[list[dict[str, int]]] = []  # the index's counts after each callback
    ran: ClassVar[list[int]] = []  # the jobs that ran, by number

    per_job: int = 2
    failing: list[int] = pydantic.Field(default_factory=list)
    kind: str = "cancelled"
    full_disk_at: int = -1  # the job whose writes fail (a full disk)

    def _execute(self, tasks: list[ItemTask]) -> None:
        from assay_backends import JobFailure, JobsFailed
        from assay_backends._watch import Watcher  # what the submitit backends' wait calls

        watcher = Watcher()
        FakeJobs.calls.append(sum(len(task) for task in tasks))
        pieces = [p for task in tasks for p in task.split(max(1, len(task) // self.per_job))]
        failures = []
        for number, piece in enumerate(pieces):
            if number in self.failing:
                job = f"9_{number}"
                failure = JobFailure(
                    job, self.kind.upper(), self.kind,  # type: ignore[arg-type]
                    f"job {job} {self.kind}", tuple(piece.uids),
                    Path(f"/logs/{job}.out"), Path(f"/logs/{job}.err"),
                )  # fmt: skip
                failures.append(failure)
                watcher.add(failure)
            elif number == self.full_disk_at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(piece.paths.base_folder))
            else:
                FakeJobs.ran.append(number)
                piece()
            watcher.tick(True)
            folder = piece.paths.base_folder.parent
            with ResultsIndex(folder, read_only=True) as index:
                FakeJobs.seen.append(index.status_counts())
        if failures:
            raise JobsFailed(failures)


@pytest.fixture
def ops(write_module: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    FakeJobs.calls.clear()
    FakeJobs.seen.clear()
    FakeJobs.ran.clear()
    monkeypatch.setattr(sweep_jobs, "INDEX_EVERY", 0.0)  # index at every callback
    return write_module(OPS, "assay_test_sweep_jobs")


def _experiment(
    ops: Any, folder: Path, n: int = 12, bad: tuple[int, ...] = (), **backend: Any
) -> Experiment:
    params = [{"i": i, "bad": list(bad)} if bad else {"i": i} for i in range(n)]
    return Experiment(
        "jobs", ops.square, explicit(params), folder=folder, progress=False,
        backend={"backend": "FakeJobs", **backend},
    )  # fmt: skip


def test_every_run_goes_in_one_submission_and_is_indexed_as_it_lands(
    ops: Any, tmp_path: Path
) -> None:
    results = _experiment(ops, tmp_path / "x", n=24, per_job=4).run()
    assert results.counts() == {"success": 24}
    assert FakeJobs.calls == [24]  # one call of the backend for the whole sweep
    # the index grew job by job while the backend still ran
    done = [counts.get("success", 0) for counts in FakeJobs.seen]
    assert done == [4, 8, 12, 16, 20, 24]


def test_a_cancelled_job_leaves_the_others_complete_and_its_runs_cancelled(
    ops: Any, tmp_path: Path
) -> None:
    experiment = _experiment(ops, tmp_path / "x", n=12, per_job=2, failing=[1])
    results = experiment.run()  # not raised: summarised
    assert results.counts() == {"success": 10, "cancelled": 2}
    for row in results.with_status("cancelled"):
        assert (row.error, row.job_id, row.stdout) == ("job 9_1 cancelled", "9_1", "/logs/9_1.out")
        assert row.params["i"] in (2, 3)
    summary = experiment.last_summary
    assert summary is not None
    assert summary.cancelled == 2
    assert "run " in summary.report("jobs")[1]
    assert "job 9_1 cancelled" in summary.report("jobs")[1]
    # a plain rerun runs the cancelled runs (the fake's job 1 is now the rerun's only job)
    again = _experiment(ops, tmp_path / "x", n=12, per_job=2).run()
    assert again.counts() == {"success": 12}


def test_runs_of_a_timed_out_job_are_timeout_and_retried_like_failed(
    ops: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "x"
    results = _experiment(ops, folder, n=6, failing=[0], kind="timeout").run()
    assert results.counts() == {"success": 4, "timeout": 2}
    assert _experiment(ops, folder, n=6).run().counts() == {"success": 4, "timeout": 2}
    assert _experiment(ops, folder, n=6).run(retry_failed=True).counts() == {"success": 6}


def test_max_failures_stops_the_submission_and_cancels_the_runs_left(
    ops: Any, tmp_path: Path
) -> None:
    # runs 0 and 1 fail in the first job: the callback after it stops the sweep
    experiment = _experiment(ops, tmp_path / "x", n=12, bad=(0, 1, 5), per_job=2)
    results = experiment.run(max_failures=2)
    assert results.counts() == {"failed": 2, "cancelled": 10}
    assert FakeJobs.ran == [0]  # no job ran after the one that reached the limit
    for row in results.with_status("cancelled"):
        assert "max_failures=2" in (row.error or "")
    summary = experiment.last_summary
    assert summary is not None
    assert summary.stopped is not None
    # a plain rerun resumes the cancelled runs; the failed ones are kept
    assert _experiment(ops, tmp_path / "x", n=12, bad=(0, 1, 5)).run().counts() == {
        "success": 9,
        "failed": 3,
    }


def test_failed_jobs_count_towards_max_failures_but_cancelled_ones_do_not(
    ops: Any, tmp_path: Path
) -> None:
    failed = _experiment(ops, tmp_path / "a", n=8, failing=[0], kind="failed")
    assert failed.run(max_failures=2).counts() == {"failed": 2, "cancelled": 6}
    cancelled = _experiment(ops, tmp_path / "b", n=8, failing=[0], kind="cancelled")
    assert cancelled.run(max_failures=2).counts() == {"success": 6, "cancelled": 2}


def test_a_sweep_of_a_job_backend_that_was_interrupted_resumes(
    ops: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = sweep_jobs.JobSweep._collect

    def interrupt_second(self: sweep_jobs.JobSweep) -> None:
        real(self)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep_jobs.JobSweep, "_collect", interrupt_second)
    experiment = _experiment(ops, tmp_path / "x", n=8, per_job=2)
    with pytest.raises(KeyboardInterrupt):
        experiment.run()
    counts = Results.load(tmp_path / "x").counts()
    assert counts.get("success", 0) >= 2
    assert counts.get("cancelled", 0) >= 2
    assert sum(counts.values()) == 8
    monkeypatch.setattr(sweep_jobs.JobSweep, "_collect", real)
    assert experiment.run().counts() == {"success": 8}


def test_a_full_disk_stops_the_sweep_and_leaves_the_runs_not_done_pending(
    ops: Any, tmp_path: Path
) -> None:
    from assay import InfrastructureError

    with pytest.raises(InfrastructureError) as raised:
        _experiment(ops, tmp_path / "x", n=8, full_disk_at=1).run()
    message = str(raised.value)
    assert "this is not a failure of the runs: 2 completed and kept" in message
    assert os.strerror(errno.ENOSPC) in message
    assert Results.load(tmp_path / "x").counts() == {"pending": 6, "success": 2}
    assert _experiment(ops, tmp_path / "x", n=8).run().counts() == {"success": 8}
