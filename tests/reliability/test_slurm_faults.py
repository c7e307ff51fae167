"""Slurm faults on a real cluster: a job that times out, is cancelled, or whose process is killed.

The runs of such a job are recorded as not successful, nothing wrong is cached, and a rerun
recovers every run with the values of a clean run. These tests take minutes (Slurm checks time
limits about every 30 s), so they run in the heavy variant, where a cluster answers.
"""

from __future__ import annotations

import json
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


def _job_ids(folder: Path) -> set[str]:
    return {
        json.loads(p.read_text())["ref"]["job_id"] for p in folder.glob("cache/*/*/jobs/*.json")
    }


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


def _check_and_recover(folder: Path, files: Path, backend: dict[str, Any], clean: Any) -> None:
    """The failed job's runs are recorded cancelled, nothing of theirs is cached, and a rerun
    recovers every run, equal to a clean run."""
    statuses = {row.run_id: row.status for row in Results.load(folder)}
    count("slurm faults")
    assert set(statuses.values()) == {"cancelled"}, statuses
    for entries in folder.glob("cache/*/code-*"):  # nothing was cached for the failed runs
        cached = [f.uid for f in frames(entries) if f.kind != DELETED]
        assert cached == [], f"entries were cached by a failed job: {cached}"
    for name in ("hold", "kill"):
        (files / name).unlink(missing_ok=True)
    final = metrics_by_run(_experiment(folder, files, backend).run())
    count("items lost", sum(final.get(k) != v for k, v in clean.items()))
    assert final == clean


def test_a_cancelled_job_is_not_a_success_and_a_rerun_recovers(tmp_path: Path) -> None:
    clean = _clean(tmp_path)
    folder, files = tmp_path / "exp", tmp_path / "files"
    files.mkdir()
    (files / "hold").touch()
    backend = {"backend": "Slurm", "max_jobs": 1, "timeout_min": 5}
    thread, outcome = _run_in_thread(_experiment(folder, files, backend))
    deadline = time.monotonic() + 60
    while not _job_ids(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    (job,) = _job_ids(folder)
    time.sleep(2)  # let it start
    subprocess.run(["scancel", job.split("_")[0]], check=True)
    thread.join(120)
    assert not thread.is_alive()
    assert "CANCELLED" in str(outcome.get("error")), outcome
    _check_and_recover(folder, files, backend, clean)


def test_a_job_whose_process_is_killed_is_not_a_success_and_a_rerun_recovers(
    tmp_path: Path,
) -> None:
    clean = _clean(tmp_path)
    folder, files = tmp_path / "exp", tmp_path / "files"
    files.mkdir()
    (files / "kill").touch()
    backend = {"backend": "Slurm", "max_jobs": 1, "timeout_min": 5}
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the job error type is the backend's
        _experiment(folder, files, backend).run()
    assert "run again" in str(raised.value) or "FAILED" in str(raised.value), raised.value
    _check_and_recover(folder, files, backend, clean)


def test_a_job_that_times_out_is_not_a_success_and_a_rerun_recovers(tmp_path: Path) -> None:
    clean = _clean(tmp_path)
    folder, files = tmp_path / "exp", tmp_path / "files"
    files.mkdir()
    (files / "hold").touch()
    backend = {"backend": "Slurm", "max_jobs": 1, "timeout_min": 1}
    with pytest.raises(Exception, match=r"timed-out|TIME ?LIMIT|TIMEOUT"):
        _experiment(folder, files, backend).run()
    _check_and_recover(folder, files, backend, clean)
