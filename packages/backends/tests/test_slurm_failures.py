"""Slurm at scale, on a real cluster: one submission, failures collected, requeues followed.

Each test takes seconds: time-outs are brought forward with ``scontrol update EndTime=now``
(Slurm then ends the job at its next time-limit pass, within 30 s), the warning signal is
sent with ``scancel --signal=USR2``, and requeued jobs are released at once instead of after
the 120 s that Slurm holds them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import pytest
from assay_backends import JobFailure, JobsFailed, current_job_logs, job_states, watch
from assay_ops import Runtime, operation
from assay_steps import Step

if TYPE_CHECKING:  # annotations only: jobs import this module by name, without the kit
    from backends_testkit import InThread

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


class HoldsFor(Step):
    """Returns the input once ``folder/release-<input>`` exists (a control file of the test).

    Inputs listed in ``quick`` return at once.
    """

    folder: Path
    quick: tuple[int, ...] = ()

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["folder"]

    def _run(self, value: int) -> tuple[int, str | None, str | None]:
        if value not in self.quick:
            while not (self.folder / f"release-{value}").exists():
                time.sleep(0.05)
        return value, os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_RESTART_COUNT")


def slurm(folder: Path, **fields: Any) -> dict[str, Any]:
    return {"backend": "Slurm", "folder": folder, "timeout_min": 5, **fields}


def running_job(step: Step, value: Any, seconds: float = 60) -> str:
    """Wait until the item ``value`` is being computed; return its job id."""
    deadline = time.monotonic() + seconds
    while step.lookup(value).status != "running":
        assert time.monotonic() < deadline, f"item {value} did not start"
        time.sleep(0.05)
    job = step.lookup(value).job()
    assert job is not None
    return str(job.job_id)


def job_ids(step: Step, value: Any) -> set[str]:
    folder = step.lookup(value).paths.job_folder
    return {json.loads(p.read_text())["ref"]["job_id"] for p in folder.glob("*.json")}


def release_requeued(job_id: str, before: Callable[[], object] = lambda: None) -> None:
    """Let a requeued job start now: Slurm holds it (``BeginTime``) for 120 s otherwise.

    ``before`` is called once the first attempt has been killed, before the next starts.
    """
    deadline = time.monotonic() + 30
    while True:
        found = subprocess.run(
            ["squeue", "--noheader", "--array", "--format=%T %r", f"--jobs={job_id}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if found == ["PENDING", "BeginTime"]:
            break
        assert time.monotonic() < deadline, f"job {job_id} was not requeued: {found}"
        time.sleep(0.1)
    time.sleep(1.0)  # the node finishes cleaning up the first attempt
    before()
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True)


def test_all_items_go_in_one_array_and_array_parallelism_throttles_it(tmp_path: Path) -> None:
    infra = slurm(tmp_path / "c", array_parallelism=1)
    step = HoldsFor(folder=tmp_path, quick=tuple(range(4)), infra=infra)
    results = list(step.run_many(range(4)))
    assert [value for value, _, _ in results] == [0, 1, 2, 3]
    ids = set().union(*(job_ids(step, v) for v in range(4)))
    assert len(ids) == 4
    assert len({job_id.split("_")[0] for job_id in ids}) == 1, "one array for all items"
    (script,) = step.lookup(0).paths.logs_folder.rglob("*_submission.sh")
    assert "--array=0-3%1" in script.read_text()
    assert "--requeue" in script.read_text()


def test_a_cancelled_task_leaves_the_others_computed_and_is_the_one_failure(
    tmp_path: Path,
    in_thread: InThread,
) -> None:
    quick = (0, 1, 2, 4, 5)
    step = HoldsFor(folder=tmp_path, quick=quick, infra=slurm(tmp_path / "c", max_jobs=6))
    thread, outcome = in_thread(lambda: list(step.run_many(range(6))))
    job_id = running_job(step, 3)
    subprocess.run(["scancel", job_id], check=True)
    thread.join(90)
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, JobsFailed), outcome
    (failure,) = error.failures
    assert failure.job_id == job_id
    assert failure.kind == "cancelled"
    assert failure.state == "CANCELLED"
    assert job_id in str(error)
    assert failure.uids == (step.lookup(3).uid,)
    assert [step.lookup(v).status for v in range(6)] == ["success"] * 3 + [None] + ["success"] * 2


def test_a_task_cancelled_before_it_started_is_a_cancelled_failure(
    tmp_path: Path, in_thread: InThread
) -> None:
    # Regression: Slurm keeps no record of an array task cancelled while pending, and it
    # was reported as a failure in state UNKNOWN instead of a cancellation.
    step = HoldsFor(folder=tmp_path, infra=slurm(tmp_path / "c", max_jobs=3, array_parallelism=2))
    thread, outcome = in_thread(lambda: list(step.run_many(range(3))))
    running_job(step, 0)
    job = step.lookup(2).job()
    assert job is not None
    pending = str(job.job_id)
    assert job_states([pending]).get(pending) == "PENDING", "throttled: task 2 waits"
    subprocess.run(["scancel", pending], check=True)
    for value in (0, 1):
        (tmp_path / f"release-{value}").touch()
    thread.join(90)
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, JobsFailed), outcome
    (failure,) = error.failures
    assert (failure.job_id, failure.kind, failure.state) == (pending, "cancelled", "CANCELLED")
    assert [step.lookup(v).status for v in range(3)] == ["success", "success", None]


class Naps(Step):
    """Sleeps a second, then returns the input."""

    def _run(self, value: int) -> int:
        time.sleep(1)
        return value


def test_a_warning_while_the_job_starts_does_not_kill_it(
    tmp_path: Path, in_thread: InThread
) -> None:
    # Regression: under a short limit Slurm sends the warning at once, possibly while the
    # job's Python starts, before any handler exists: the signal's default action killed it.
    # The job's shell ignores the signal from its first command on, and Python inherits that
    # until assay's handler is set. (The instant between the shell's start and that command
    # is the one no program can protect: the test spares it, and signals each process from
    # the moment it was seen ignoring or handling the signal, until it ends.)
    step = Naps(infra=slurm(tmp_path / "c", max_jobs=2))
    logs = str(step.lookup(0).paths.logs_folder.absolute())
    thread, outcome = in_thread(lambda: list(step.run_many(range(2))))
    starting: set[int] = set()  # Pythons signalled while starting (the signal ignored)
    protected: set[int] = set()  # processes past the shell's first command
    while thread.is_alive():  # the warning, over and over, from each job's first instant
        for pid, comm, disposition in _job_processes(logs):
            if disposition != "default":
                protected.add(pid)
            if pid not in protected:
                continue  # the shell's first instant: no program can protect it
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR2)
                if comm.startswith("python") and disposition == "ignored":
                    starting.add(pid)
        time.sleep(0.005)
    assert starting, "no job's Python was signalled while it started"
    assert outcome == {"result": [0, 1]}


def _job_processes(logs: str) -> list[tuple[int, str, str]]:
    """The job processes of a folder (the shell that starts Python, then Python): pid,
    command name, and what the warning signal does to it (``"ignored"``, ``"handled"`` or
    ``"default"``: it ends the process)."""
    found = []
    bit = 1 << (signal.SIGUSR2 - 1)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            words = (entry / "cmdline").read_bytes().split(b"\0")
            comm = (entry / "comm").read_text().strip()
            # The shell that starts Python, then Python; never sbatch, srun or slurmstepd.
            starts_python = comm == "sh" or comm.startswith("python")
            if not (starts_python and any(logs.encode() in word for word in words)):
                continue
            masks = dict(
                line.split(":\t", 1)
                for line in (entry / "status").read_text().splitlines()
                if line.startswith(("SigIgn:", "SigCgt:"))
            )
            if int(masks["SigIgn"], 16) & bit:
                found.append((int(entry.name), comm, "ignored"))
            elif int(masks["SigCgt"], 16) & bit:
                found.append((int(entry.name), comm, "handled"))
            else:
                found.append((int(entry.name), comm, "default"))
    return found


def test_a_requeued_task_is_followed_until_it_completes(
    tmp_path: Path, in_thread: InThread
) -> None:
    step = HoldsFor(folder=tmp_path, quick=(0, 2), infra=slurm(tmp_path / "c", max_jobs=3))
    thread, outcome = in_thread(lambda: list(step.run_many(range(3))))
    job_id = running_job(step, 1)
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    # The next attempt returns at once (the first one, killed, must not see it).
    release_requeued(job_id, before=(tmp_path / "release-1").touch)
    thread.join(90)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome
    results = outcome["result"]
    assert [value for value, _, _ in results] == [0, 1, 2]
    assert results[1][2] == "1", "item 1 was computed by the second attempt of its job"


class Stop(Exception):
    """Raised by the watch callback."""


def test_a_watch_callback_that_raises_cancels_the_submissions_jobs(tmp_path: Path) -> None:
    step = HoldsFor(folder=tmp_path, infra=slurm(tmp_path / "c", max_jobs=3))
    calls: list[Sequence[JobFailure]] = []

    def callback(failures: Sequence[JobFailure]) -> None:
        calls.append(failures)
        raise Stop("enough")

    with watch(callback), pytest.raises(Stop, match="enough"):
        list(step.run_many(range(3)))
    assert len(calls) == 1
    ids = sorted(set().union(*(job_ids(step, v) for v in range(3))))
    assert len(ids) == 3
    states = job_states(ids)
    assert set(states.values()) == {"CANCELLED"}, states
    assert all(step.lookup(v).status is None for v in range(3))


class WarnedOrHeld(Step):
    """Item 0 waits for the warning signal in its own log; item 1 never ends by itself."""

    folder: Path

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["folder"]

    def _run(self, value: int) -> tuple[int, bool]:
        logs = current_job_logs()
        assert logs is not None
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline:
            if value == 0 and "got the warning signal" in Path(logs[1]).read_text():
                return value, True
            if value == 1 and (self.folder / "release").exists():
                break
            time.sleep(0.1)
        return value, False


def test_the_warning_does_not_stop_a_run_and_a_time_out_names_the_limit(
    tmp_path: Path, in_thread: InThread
) -> None:
    # Under a 1-minute limit, submitit's warning (90 s before the limit) comes at Slurm's first
    # time-limit pass: it used to stop the run there. Item 1 is made to reach its limit now.
    step = WarnedOrHeld(folder=tmp_path, infra=slurm(tmp_path / "c", timeout_min=1, max_jobs=2))
    thread, outcome = in_thread(lambda: list(step.run_many([0, 1])))
    job_id = running_job(step, 1)
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "EndTime=now"], check=True)
    thread.join(100)
    (tmp_path / "release").touch()
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, JobsFailed), outcome
    (failure,) = error.failures
    assert (failure.job_id, failure.kind, failure.state) == (job_id, "timeout", "TIMEOUT")
    assert "reached its time limit of 1 min" in failure.message
    assert step.lookup(0).status == "success"
    assert step.run(0) == (0, True), "item 0 got the warning, and ran on to its end"
    assert step.lookup(1).status is None, "the timed-out item stays uncached"
    assert step.run(1) == (1, False), "a rerun computes it"


@operation
def count(params: Any, runtime: Runtime) -> dict[str, Any]:
    """Counts ``n`` steps; on its first attempt, waits at ``pause_at`` for the warning."""
    state = runtime.checkpoint() or {"done": [], "attempts": 0}
    state["attempts"] += 1
    runtime.on_timeout(lambda: dict(state, done=list(state["done"])))
    for step in range(len(state["done"]), params["n"]):
        if step == params["pause_at"] and state["attempts"] == 1:
            Path(params["paused"]).touch()
            while True:  # the warning comes; the job is requeued and this attempt killed
                time.sleep(0.05)
        state["done"].append(step)
    return {"total": sum(state["done"]), "attempts": state["attempts"]}


class Counts(Step):
    """Runs ``count`` with a run folder, as an experiment's worker does."""

    folder: Path

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["folder"]

    def _run(self, value: int) -> dict[str, Any]:
        runtime = Runtime(run_dir=self.folder / f"run-{value}")
        params = {"n": value, "pause_at": 2, "paused": str(self.folder / "paused")}
        record = count.run(params=params, runtime=runtime)
        assert record.status == "success", record.error
        return dict(record.metrics, left=runtime.checkpoint())


def test_a_checkpointed_run_is_requeued_at_the_warning_and_resumes(
    tmp_path: Path, in_thread: InThread
) -> None:
    step = Counts(folder=tmp_path, infra=slurm(tmp_path / "c"))
    thread, outcome = in_thread(lambda: step.run(4))
    job_id = running_job(step, 4)
    deadline = time.monotonic() + 60
    while not (tmp_path / "paused").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # What Slurm sends before the time limit, to the job's steps.
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    release_requeued(job_id)
    thread.join(90)
    assert "error" not in outcome, outcome
    assert outcome["result"] == {"total": [0 + 1 + 2 + 3], "attempts": [2], "left": None}
    log = step.lookup(4).job().paths.stderr.read_text()  # type: ignore[union-attr]
    assert "checkpoint saved, job requeued" in log


class UsesModule(Step):
    """Returns what ``snapmod.value()`` says in the job, and a variable set by ``setup``."""

    def _run(self, value: int) -> tuple[int, str | None]:
        import snapmod  # type: ignore[import-not-found]

        return snapmod.value(), os.environ.get("ASSAY_SETUP")


def test_a_code_snapshot_and_setup_lines_apply_to_slurm_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_thread: InThread
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "snapmod.py").write_text("def value():\n    return 1\n")
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    infra = slurm(
        tmp_path / "c",
        code_snapshot=tmp_path / "snaps",
        setup=["export ASSAY_SETUP=done", "sleep 2"],  # time to edit while the job starts
    )
    step = UsesModule(infra=infra)
    thread, outcome = in_thread(lambda: step.run(1))
    deadline = time.monotonic() + 30
    while step.lookup(1).job() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (folder / "snapmod.py").write_text("def value():\n    return 2\n")
    thread.join(60)
    assert outcome.get("result") == (1, "done"), outcome
