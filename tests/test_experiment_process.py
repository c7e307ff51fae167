"""Experiment sweeps on the process pool, and the demo (both start worker processes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assay import Experiment, ProcessPool, Results, grid
from assay._demo import SAMPLE_SIZES, run_demo
from tests._slurm import require_slurm_cluster

pytestmark = pytest.mark.slow


def test_process_pool_sweep_matches_the_inline_one(tmp_path: Path) -> None:
    space = grid(n_samples=[100, 1000])
    pooled = Experiment(
        "pi",
        "assay._demo:estimate_pi",
        space,
        replicates=3,
        backend=ProcessPool(max_jobs=2),
        folder=tmp_path / "pool",
        progress=False,
    ).run()
    inline = Experiment(
        "pi",
        "assay._demo:estimate_pi",
        space,
        replicates=3,
        folder=tmp_path / "inline",
        progress=False,
    ).run()
    assert pooled.counts() == {"success": 6}
    # seeds depend only on (root seed, params, replicate): the backend does not matter
    assert [r.metrics for r in pooled] == [r.metrics for r in inline]
    assert {rec.runtime["backend"] for rec in pooled.records()} == {"ProcessPool"}
    assert {rec.runtime["backend"] for rec in inline.records()} == {"Cached"}


def test_runs_execute_in_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "assay_test_pid_ops"
    (tmp_path / f"{name}.py").write_text(
        "import os\nfrom assay_ops import operation\n\n\n@operation\n"
        "def pid(params, capture):\n    capture.metric('pid', os.getpid())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    results = Experiment(
        "pids",
        f"{name}:pid",
        grid(i=list(range(6))),
        backend=ProcessPool(max_jobs=2),
        folder=tmp_path / "exp",
        progress=False,
    ).run()
    pids = {row.metrics["pid"] for row in results}
    assert os.getpid() not in pids


def test_backend_given_as_a_dict(tmp_path: Path) -> None:
    experiment = Experiment(
        "pi",
        "assay._demo:estimate_pi",
        grid(n_samples=[100]),
        replicates=2,
        backend={"backend": "ProcessPool", "max_jobs": 2},
        folder=tmp_path,
        progress=False,
    )
    assert type(experiment.step.infra).__name__ == "ProcessPool"
    assert experiment.run().counts() == {"success": 2}


def test_demo_runs_then_completes_from_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = run_demo(folder=tmp_path / "demo", replicates=2, max_jobs=2, progress=False)
    out = capsys.readouterr().out
    assert len(results) == 2 * len(SAMPLE_SIZES)
    assert "Monte Carlo estimate of π" in out
    assert "run the demo again" in out
    summary = {row["n_samples"]: row for row in results.summary("abs_error", by=["n_samples"])}
    assert summary[SAMPLE_SIZES[-1]]["mean"] < summary[SAMPLE_SIZES[0]]["mean"]
    pytest.importorskip("matplotlib")
    assert (tmp_path / "demo" / "plots" / "abs_error_by_n_samples.png").is_file()

    again = run_demo(folder=tmp_path / "demo", replicates=2, max_jobs=2, progress=False)
    out = capsys.readouterr().out
    assert "came from the cache" in out
    assert [r.metrics for r in again] == [r.metrics for r in Results.load(tmp_path / "demo")]


def test_the_pi_sweep_example_runs_and_resumes(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "examples" / "pi_sweep.py"
    command = [sys.executable, str(script), str(tmp_path / "runs")]
    first = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    assert "100000" in first.stdout
    assert "came from the cache" not in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    assert "all 20 runs came from the cache" in second.stdout
    assert first.stdout.splitlines()[:5] == second.stdout.splitlines()[:5]


def test_ctrl_c_on_a_pool_sweep_keeps_completed_runs_and_resumes(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from assay._index import ResultsIndex

    folder = tmp_path / "demo"
    command = [sys.executable, "-m", "assay", "demo", "--folder", str(folder)]
    child = subprocess.Popen(
        [*command, "--replicates", "100", "--max-jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    done = 0
    while done < 10 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
        if (folder / "index.sqlite").exists():
            with ResultsIndex(folder, create=False) as index:
                done = index.status_counts().get("success", 0)
    assert child.poll() is None, "the sweep finished before it could be interrupted"
    os.killpg(child.pid, signal.SIGINT)  # Ctrl-C: the driver and its workers
    try:
        _, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # never leave the sweep's processes behind
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail("the interrupted sweep did not stop within 60 s")
    assert child.returncode == 130, err
    assert "interrupted" in err
    counts = Results.load(folder).counts()
    assert counts.get("success", 0) >= 10
    assert counts.get("cancelled", 0) > 0
    assert set(counts) <= {"success", "cancelled"}

    again = run_demo(folder=folder, replicates=100, max_jobs=2, progress=False)
    assert again.counts() == {"success": 500}


def test_submitit_local_processes_run_a_sweep(tmp_path: Path) -> None:
    space = grid(n_samples=[100, 1000])
    experiment = Experiment(
        "pi",
        "assay._demo:estimate_pi",
        space,
        replicates=2,
        backend={"backend": "LocalProcess", "timeout_min": 5, "max_jobs": 2},
        folder=tmp_path / "local",
        progress=False,
    )
    results = experiment.run()
    assert results.counts() == {"success": 4}
    inline = Experiment(
        "pi",
        "assay._demo:estimate_pi",
        space,
        replicates=2,
        folder=tmp_path / "inline",
        progress=False,
    ).run()
    assert [r.metrics for r in results] == [r.metrics for r in inline]
    assert {rec.runtime["backend"] for rec in results.records()} == {"LocalProcess"}


def test_a_record_names_the_local_job_that_ran_it(tmp_path: Path) -> None:
    experiment = Experiment(
        "pi",
        "assay._demo:estimate_pi",
        grid(n_samples=[100]),
        replicates=2,
        backend={"backend": "LocalProcess", "timeout_min": 5, "max_jobs": 2},
        folder=tmp_path / "local",
        progress=False,
    )
    experiment.run()
    for spec, record in zip(experiment.specs, experiment.run().records(), strict=True):
        job = experiment.step.lookup(experiment._items([spec])[0]).job()
        assert record.runtime["job"] == str(job.job_id)


def test_slurm_runs_a_sweep_and_a_rerun_comes_from_the_index(tmp_path: Path) -> None:
    require_slurm_cluster("a sweep on Slurm")
    backend = {"backend": "Slurm", "timeout_min": 5, "max_jobs": 2}
    make = lambda: Experiment(  # noqa: E731
        "pi",
        "assay._demo:estimate_pi",
        grid(n_samples=[100, 1000]),
        replicates=3,
        backend=backend,
        folder=tmp_path / "slurm",
        progress=False,
    )
    experiment = make()
    results = experiment.run()
    assert results.counts() == {"success": 6}
    assert {rec.runtime["backend"] for rec in results.records()} == {"Slurm"}
    # each record names its Slurm job (array job and task), where its logs are found
    for spec, record in zip(experiment.specs, results.records(), strict=True):
        job = experiment.step.lookup(experiment._items([spec])[0]).job()
        assert record.runtime["job"] == str(job.job_id)
    again = make()
    again.run()
    assert again.last_summary is not None
    assert again.last_summary.skipped == 6
