"""A sweep on a real Slurm cluster interrupted with Ctrl-C, then run again.

Ctrl-C stops the driver, which records the unfinished runs as cancelled; the jobs it had
submitted are Slurm's, and go on. The rerun must not submit their items a second time: it
waits for those jobs and reads what they wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from assay import Results
from tests._slurm import require_slurm_cluster
from tests.kit.jobs import job_ids

pytestmark = pytest.mark.slow

OPERATION = """
import time
from pathlib import Path

from assay import operation


@operation
def held(params, context, capture):
    # Runs until the test removes the hold file, so that Ctrl-C finds the jobs running.
    while Path(context["hold"]).exists():
        time.sleep(0.05)
    capture.metric("y", 10 * params["i"])
"""

DRIVER = """
import signal
import sys

# A driver started in the background may inherit an ignored SIGINT: Ctrl-C must reach it.
signal.signal(signal.SIGINT, signal.default_int_handler)
from assay import Experiment, explicit

experiment = Experiment(
    "interrupted",
    "cluster_ops:held",
    explicit([{"i": i} for i in range(3)]),
    context={"hold": sys.argv[2]},
    backend={"backend": "Slurm", "job_name": sys.argv[3], "max_jobs": 3, "timeout_min": 5},
    folder=sys.argv[1],
    progress=False,
)
print(experiment.run().counts())
"""


def _running(name: str) -> int:
    listing = subprocess.run(
        ["squeue", "--noheader", "--array", "--states=RUNNING", f"--name={name}", "--format=%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(listing.split())


def test_a_rerun_after_ctrl_c_waits_for_the_running_jobs_instead_of_submitting_again(
    tmp_path: Path,
) -> None:
    require_slurm_cluster("a sweep interrupted on Slurm")
    (tmp_path / "cluster_ops.py").write_text(textwrap.dedent(OPERATION))
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    # The jobs import the operation by its ref: they inherit the driver's environment.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    folder, hold, name = tmp_path / "sweep", tmp_path / "hold", f"assay-ctrl-c-{tmp_path.name}"
    hold.touch()
    command = [sys.executable, str(driver), str(folder), str(hold), name]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _running(name) < 2 and time.monotonic() < deadline:  # 2 CPUs: 2 of 3 jobs run
            time.sleep(0.2)
        assert _running(name) >= 1, "no job of the sweep started"
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode != 0
    assert "run again to resume" in stderr.decode()
    assert set(Results.load(folder).counts()) == {"cancelled"}
    submitted = job_ids(folder)
    assert len(submitted) == 3

    # The rerun starts while the jobs still hold: it must wait for them, not submit again.
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2)
        hold.unlink()
        _, stderr = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert second.returncode == 0, stderr.decode()
    results = Results.load(folder)
    assert results.counts() == {"success": 3}
    assert sorted(record.metrics["y"] for record in results.records()) == [[0], [10], [20]]
    # Every item was computed by a job of the first driver: nothing was submitted twice.
    assert job_ids(folder) == submitted
