"""Experiments on the real Slurm cluster: one submission, live results, one bad job, the policy.

Each test submits a few short jobs (seconds) under a job name of its own, and cancels only
jobs it submitted, by id.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, Results, explicit
from assay._cli import main
from tests._slurm import require_slurm_cluster
from tests.kit.jobs import job_ids
from tests.kit.modules import ops_module

pytestmark = pytest.mark.slow

OPS = """
import time

from assay_ops import operation


@operation
def nap(params, capture):
    print(f"hello from run {params['i']}", flush=True)
    if params["i"] in params.get("bad", ()):
        raise ValueError(f"run {params['i']} refuses")
    time.sleep(params.get("sleep", 0.1))
    capture.metric("y", params["i"] * 2)
"""


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Write the operations' module where the driver and the jobs import it; return its name."""
    require_slurm_cluster("an experiment on Slurm")
    with ops_module(tmp_path, monkeypatch, "slurm_sweep_ops", OPS) as name:
        yield name


def _experiment(ops: str, folder: Path, params: list[dict[str, Any]], **backend: Any) -> Experiment:
    settings = {"backend": "Slurm", "partition": "debug", "timeout_min": 10, **backend}
    return Experiment("slurm", f"{ops}:nap", explicit(params), folder=folder, progress=False,
                      backend=settings)  # fmt: skip


def _ours(name: str) -> list[str]:
    listing = subprocess.run(
        ["squeue", "--noheader", "--array", f"--name={name}", "--format=%i"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return listing.split()


def _live(folder: Path) -> tuple[int, set[str]]:
    """Return how many runs the index holds as done, and the states ``assay status`` shows."""
    from assay._index import ResultsIndex
    from assay._status import job_references, run_states

    with ResultsIndex(folder, read_only=True) as index:
        rows = list(index.iter_rows())
        config = index.get_meta("experiment", {}).get("config")
    states = run_states(rows, job_references(folder, config))
    done = sum(1 for row in rows if row.status != "pending")
    return done, {state for state, job in states if job}


def test_a_sweep_is_one_submission_with_job_ids_and_logs_in_the_results(
    ops: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "sweep"
    name = f"assay-one-{tmp_path.name}"
    params = [{"i": i} for i in range(24)]
    results = _experiment(ops, folder, params, max_jobs=8, job_name=name).run()
    assert results.counts() == {"success": 24}
    tasks = job_ids(folder)
    assert len(tasks) == 8
    assert len({task.split("_")[0] for task in tasks}) == 1  # one array: one submission
    table = results.table()
    assert {row["job_id"] for row in table} == tasks
    for row in table:
        assert Path(row["stdout"]).is_file()
        assert Path(row["stderr"]).is_file()
    # assay status lists each run with its job; assay logs prints what the run printed
    capsys.readouterr()
    assert main(["status", str(folder), "--all"]) == 0
    status = capsys.readouterr().out
    for row in table:
        assert f"{row['run_id']:<34} {'done (success)':<18} {row['job_id']}" in status
    first = next(row for row in table if row["i"] == 5)
    assert main(["logs", str(folder), first["run_id"]]) == 0
    assert "hello from run 5" in capsys.readouterr().out
    assert main(["logs", str(folder), first["run_id"], "--path"]) == 0
    assert capsys.readouterr().out.startswith(f"stdout: {first['stdout']}\n")


def test_a_cancelled_array_task_leaves_the_other_runs_complete_in_the_same_call(
    ops: str, tmp_path: Path
) -> None:
    folder = tmp_path / "sweep"
    name = f"assay-scancel-{tmp_path.name}"
    params = [{"i": i, "sleep": 1.0} for i in range(24)]
    target: list[str] = []
    seen: list[tuple[int, set[str]]] = []  # while the sweep runs: runs indexed, run states

    def cancel_one() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not target:
            tasks = sorted(job_ids(folder))
            if tasks:
                target.append(next(t for t in tasks if t.endswith("_3")))
                subprocess.run(["scancel", target[0]], check=True)  # ours, by id
            time.sleep(0.1)
        while time.monotonic() < deadline and not done.is_set():
            seen.append(_live(folder))
            time.sleep(0.2)

    done = threading.Event()

    canceller = threading.Thread(target=cancel_one)
    canceller.start()
    experiment = _experiment(ops, folder, params, max_jobs=8, job_name=name)
    try:
        results = experiment.run()  # not raised: the sweep goes on and summarises
    finally:
        done.set()
        canceller.join()
    assert target, "no job was submitted"
    # live: the index grew while the jobs ran, and the runs showed as running with their job
    assert any(0 < indexed < 24 for indexed, _ in seen)
    assert any("running" in states for _, states in seen)
    counts = results.counts()
    cancelled = results.with_status("cancelled").rows
    assert counts.get("success", 0) >= 21
    assert len(cancelled) >= 1
    assert counts.get("success", 0) + len(cancelled) == 24
    for row in cancelled:  # the kill landed on that task, and its runs say so
        assert row.job_id == target[0]
        assert row.error is not None
        assert "cancelled" in row.error
        assert target[0] in row.error
    summary = experiment.last_summary
    assert summary is not None
    assert summary.cancelled == len(cancelled)
    # a rerun completes them
    again = _experiment(ops, folder, params, max_jobs=8, job_name=name).run()
    assert again.counts() == {"success": 24}


def test_max_failures_stops_the_sweep_and_cancels_the_queued_jobs(ops: str, tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    name = f"assay-maxfail-{tmp_path.name}"
    bad = [0, 1, 2, 3]
    params = [{"i": i, "bad": bad, "sleep": 0.5} for i in range(24)]
    # 12 tasks of 2 runs, 3 at a time: the first two tasks fail, the rest wait in the queue
    experiment = _experiment(ops, folder, params, max_jobs=12, array_parallelism=3, job_name=name)
    results = experiment.run(max_failures=2)
    counts = results.counts()
    assert counts.get("failed", 0) >= 2
    assert counts.get("cancelled", 0) >= 12
    assert sum(counts.values()) == 24
    assert not _ours(name)  # every job left was cancelled, and is gone
    summary = experiment.last_summary
    assert summary is not None
    assert summary.stopped is not None
    assert all(row.error for row in results.with_status("cancelled"))
    # a plain rerun resumes the cancelled runs
    rerun = _experiment(ops, folder, params, max_jobs=12, job_name=name).run()
    assert rerun.counts() == {"success": 20, "failed": 4}


def test_the_command_runs_on_slurm_with_job_settings_and_a_config_file(
    ops: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "sweep"
    name = f"assay-cli-{tmp_path.name}"
    config = tmp_path / "slurm.toml"
    config.write_text(f'backend = "slurm"\njob_name = "{name}"\ntimeout_min = 60\n')
    argv = [
        "run", f"{ops}:nap", "--grid", "i=0,1,2,3", "--folder", str(folder),
        "--backend-config", str(config), "--partition", "debug", "--time", "0:05:00",
        "--mem", "500M", "--max-jobs", "2", "--slurm", "comment=assay-test",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    results = Results.load(folder)
    assert results.counts() == {"success": 4}
    jobs = {row.job_id for row in results}
    assert len(jobs) == 2
    # the job ran with the settings asked for: the option's time limit, not the file's
    job = sorted(jobs)[0]
    shown = subprocess.run(
        ["sacct", "-n", "-X", "-j", job, "--format=JobName%60,TimelimitRaw"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    if shown:  # accounting may be off on a test cluster
        assert shown[:2] == [name, "5"]
    assert main(["status", str(folder), "--resources"]) == 0
    assert "suggested for the next sweep: --mem " in capsys.readouterr().out
