"""Slurm faults on a real cluster: a job that times out, is cancelled, or whose process is killed.

The sweep goes on past such a job: its runs are recorded with the job's outcome (``cancelled``,
``timeout``, ``failed``) and its message, nothing wrong is cached, and a rerun recovers every
run with the values of a clean run. A time-out is brought forward with ``scontrol update
EndTime=now``, which Slurm acts on at its next time-limit pass (every 30 s), so these tests
take up to a minute each and run in the heavy variant, where a cluster answers.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import submitit
from audit import count, metrics_by_run
from layout import DELETED, frames
from reliability_steps import HEAVY

from assay import Experiment, Results, explicit
from tests._slurm import require_slurm_cluster
from tests.kit.jobs import job_ids

HERE = Path(__file__).resolve().parent


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    if not HEAVY:
        pytest.skip("Slurm faults take minutes: they run with ASSAY_RELIABILITY_HEAVY=1")
    require_slurm_cluster("Slurm fault injection")
    # jobs import the operation by its ref: they need this folder on their path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    # submitit waits 15 s for the result file of a job that ended without one
    monkeypatch.setattr(submitit.SlurmJob, "_results_timeout_s", 1)


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cluster")]


def _experiment(folder: Path, files: Path, backend: dict[str, Any] | None) -> Experiment:
    return Experiment(
        "slurm-faults",
        "reliability_steps:held",
        explicit([{"i": i} for i in range(3)]),
        context={"hold": str(files / "hold"), "kill": str(files / "kill")},
        backend=backend,
        folder=folder,
        progress=False,
    )


def _clean(tmp_path: Path) -> dict[str, Any]:
    files = tmp_path / "clean-files"
    files.mkdir()
    return metrics_by_run(_experiment(tmp_path / "clean", files, None).run())


def _run_in_thread(experiment: Experiment) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["results"] = experiment.run()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _started_job(folder: Path) -> str:
    """Wait until the sweep's job was submitted and runs; return its id."""
    deadline = time.monotonic() + 60
    while not job_ids(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    (job,) = job_ids(folder)
    while _state(job) != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _state(job) == "RUNNING", f"job {job} did not start"
    return job


def _state(job: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%T", "-j", job],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def _check_and_recover(
    folder: Path, files: Path, backend: dict[str, Any], clean: Any, status: str, job: str
) -> None:
    """The job's runs are recorded with ``status`` and a message naming the job, nothing of
    theirs is cached, and a rerun recovers every run, equal to a clean run."""
    rows = list(Results.load(folder))
    count("slurm faults")
    assert {row.status for row in rows} == {status}, [(r.run_id, r.status) for r in rows]
    for row in rows:
        assert row.job_id == job, row
        assert job in str(row.error), row.error
    for entries in folder.glob("cache/*/code-*"):  # nothing was cached for the failed runs
        cached = [f.uid for f in frames(entries) if f.kind != DELETED]
        assert cached == [], f"entries were cached by a failed job: {cached}"
    for name in ("hold", "kill"):
        (files / name).unlink(missing_ok=True)
    retry = status in ("failed", "timeout")  # kept as failures unless retried
    final = metrics_by_run(_experiment(folder, files, backend).run(retry_failed=retry))
    count("items lost", sum(final.get(k) != v for k, v in clean.items()))
    assert final == clean


def _held_sweep(tmp_path: Path, hold: str) -> tuple[Path, Path, dict[str, Any], Any]:
    clean = _clean(tmp_path)
    folder, files = tmp_path / "exp", tmp_path / "files"
    files.mkdir()
    (files / hold).touch()
    backend = {"backend": "Slurm", "max_jobs": 1, "timeout_min": 5}
    return folder, files, backend, clean


def test_a_cancelled_job_is_recorded_cancelled_and_a_rerun_recovers(tmp_path: Path) -> None:
    folder, files, backend, clean = _held_sweep(tmp_path, "hold")
    thread, outcome = _run_in_thread(_experiment(folder, files, backend))
    job = _started_job(folder)
    subprocess.run(["scancel", job.split("_")[0]], check=True)
    thread.join(120)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome  # the sweep went on and summarised
    assert outcome["results"].counts() == {"cancelled": 3}
    _check_and_recover(folder, files, backend, clean, "cancelled", job)


def test_a_job_that_times_out_is_recorded_timeout_and_a_rerun_recovers(tmp_path: Path) -> None:
    folder, files, backend, clean = _held_sweep(tmp_path, "hold")
    thread, outcome = _run_in_thread(_experiment(folder, files, backend))
    job = _started_job(folder)
    # Slurm ends the job at its next time-limit pass, as if its 5 minutes were up.
    subprocess.run(["scontrol", "update", f"jobid={job}", "EndTime=now"], check=True)
    thread.join(120)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome
    assert outcome["results"].counts() == {"timeout": 3}
    assert all("time limit" in str(row.error) for row in outcome["results"])
    _check_and_recover(folder, files, backend, clean, "timeout", job)


def test_a_job_whose_process_is_killed_is_recorded_failed_and_a_rerun_recovers(
    tmp_path: Path,
) -> None:
    folder, files, backend, clean = _held_sweep(tmp_path, "kill")
    results = _experiment(folder, files, backend).run()
    assert results.counts() == {"failed": 3}
    (job,) = job_ids(folder)
    _check_and_recover(folder, files, backend, clean, "failed", job)
