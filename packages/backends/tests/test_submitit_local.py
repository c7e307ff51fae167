from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import submitit
from assay_backends import Auto, JobError, LocalProcess, Slurm, SlurmUnavailableError, SubmititDebug
from assay_steps import Backend, ItemTask, Step
from backends_testkit import SlowWhileFlag, job_ids

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SUBMITIT = ["LocalProcess", "SubmititDebug"]


class Pid(Step):
    """Returns the input and the process that computed it."""

    def _run(self, value: int) -> tuple[int, int]:
        return value, os.getpid()


class Fails(Step):
    def _run(self, value: int) -> int:
        if value == 2:
            raise KeyError(f"no such thing as item {value}")
        return value


@pytest.mark.parametrize("backend", SUBMITIT)
def test_results_are_cached_and_a_rerun_reuses_them(backend: str, tmp_path: Path) -> None:
    step = Pid(infra={"backend": backend, "folder": tmp_path, "max_jobs": 2})
    first = list(step.run_many(range(5)))
    assert [value for value, _ in first] == list(range(5))
    if backend == "LocalProcess":
        assert all(pid != os.getpid() for _, pid in first), "items run in job processes"
    else:
        assert all(pid == os.getpid() for _, pid in first), "debug jobs run inline"
    again = Pid(infra={"backend": backend, "folder": tmp_path})
    assert list(again.run_many(range(5))) == first


@pytest.mark.parametrize(
    ("n_items", "max_jobs", "min_items", "expected_jobs"),
    [(10, 3, 1, 3), (10, 128, 4, 2), (3, 128, 5, 1), (4, 128, 1, 4)],
)
def test_items_are_packed_into_jobs(
    tmp_path: Path, n_items: int, max_jobs: int, min_items: int, expected_jobs: int
) -> None:
    infra = {"backend": "SubmititDebug", "folder": tmp_path, "max_jobs": max_jobs}
    infra["min_items_per_job"] = min_items
    step = Pid(infra=infra)
    list(step.run_many(range(n_items)))
    assert len(job_ids(step.lookup(0).paths.step_folder)) == expected_jobs


def test_local_jobs_keep_their_logs_under_the_step_folder_and_lookup_finds_the_job(
    tmp_path: Path,
) -> None:
    step = Pid(infra={"backend": "LocalProcess", "folder": tmp_path, "max_jobs": 2})
    list(step.run_many(range(4)))
    handle = step.lookup(3)
    job = handle.job()
    assert isinstance(job, submitit.LocalJob)
    assert job.paths.folder.is_relative_to(handle.paths.logs_folder)
    assert job.paths.stdout.exists()
    assert job.done()
    assert len(job_ids(handle.paths.step_folder)) == 2
    # From another instance (as after a restart) the job is rebuilt from its folder.
    rebuilt = Pid(infra={"backend": "LocalProcess", "folder": tmp_path}).lookup(3).job()
    assert isinstance(rebuilt, submitit.LocalJob)
    assert str(rebuilt.job_id) == str(job.job_id)


def test_local_jobs_leave_one_log_folder_per_job_and_no_template_folder(tmp_path: Path) -> None:
    step = Pid(infra={"backend": "LocalProcess", "folder": tmp_path, "max_jobs": 2})
    list(step.run_many(range(4)))
    handle = step.lookup(0)
    logs = handle.paths.logs_folder
    ids = job_ids(handle.paths.step_folder)
    assert len(ids) == 2
    # Each job keeps its own folder of logs, named by its id; nothing else is left there.
    assert {p.name for p in logs.iterdir()} == ids
    for job_id in ids:
        assert (logs / job_id / f"{job_id}_0_log.out").exists()


def test_lookup_job_of_an_inline_backend_is_none(tmp_path: Path) -> None:
    step = Pid(infra={"backend": "Cached", "folder": tmp_path})
    step.run(1)
    assert step.lookup(1).job() is None


@pytest.mark.parametrize("backend", SUBMITIT)
def test_an_error_inside_a_job_surfaces_with_its_traceback(
    backend: str, tmp_path: Path, notes_of: Callable[[BaseException], str]
) -> None:
    step = Fails(infra={"backend": backend, "folder": tmp_path, "max_jobs": 1})
    with pytest.raises(KeyError, match="no such thing as item 2") as raised:
        list(step.run_many(range(4)))
    notes = notes_of(raised.value)
    assert "Traceback" in notes
    assert "_run" in notes
    assert step.lookup(2).status == "error"
    assert [step.lookup(v).status for v in (0, 1)] == ["success"] * 2
    # Items after the failing one in the same job may be left uncomputed: a rerun computes them.
    assert step.run(3) == 3


class ExitsAt(Step):
    """Ends its process without a word (as a crash in native code would) at one input."""

    at: int

    def _run(self, value: int) -> int:
        if value == self.at:
            print(f"giving up on {value}", file=sys.stderr, flush=True)
            os._exit(3)
        return value


def test_a_job_whose_process_dies_is_reported_as_such_not_with_a_log_line(tmp_path: Path) -> None:
    step = ExitsAt(at=2, infra={"backend": "LocalProcess", "folder": tmp_path, "max_jobs": 1})
    with pytest.raises(JobError) as raised:
        step.run_many([1, 2, 3])
    message = str(raised.value)
    assert "ended without writing a result" in message
    assert "Loading pickle" not in message  # submitit's own log lines are no reason
    assert "giving up on 2" in message  # what the process said last
    assert "run again" in message
    # The item computed before the crash is kept; the others stay uncached.
    assert [step.lookup(v).status for v in (1, 2, 3)] == ["success", None, None]


@pytest.mark.slow
def test_a_killed_job_leaves_its_items_uncached_and_a_rerun_computes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # submitit waits 15 s for a result file that a dead job will never write.
    monkeypatch.setattr(submitit.LocalJob, "_results_timeout_s", 1)
    flag = tmp_path / "hold"
    flag.touch()
    infra = {"backend": "LocalProcess", "folder": tmp_path / "c", "max_jobs": 1}
    step = SlowWhileFlag(flag=flag, infra=infra)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = list(step.run_many([1, 2]))
        except Exception as error:
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    job = None
    while job is None and time.monotonic() < deadline:
        job = step.lookup(1).job()
        time.sleep(0.05)
    assert job is not None, "the job was not submitted"
    claims = step.lookup(1).paths.claims_folder
    uid = step.lookup(1).uid
    claim = None
    while claim is None and time.monotonic() < deadline:
        # The job's claim on the items, once it started computing them.
        found = [p for p in claims.glob("*.claim") if uid in p.read_text().split("\n")[1:]]
        claim = found[0] if found else None
        time.sleep(0.05)
    assert claim is not None, "the job did not claim its items"
    # The process computing the item dies at once, as on a node failure.
    os.kill(json.loads(claim.read_text().split("\n", 1)[0])["pid"], signal.SIGKILL)
    worker.join(60)
    assert isinstance(outcome.get("error"), JobError), outcome
    message = str(outcome["error"])
    assert str(job.job_id) in message
    assert "run again" in message
    assert step.lookup(1).status is None
    assert step.lookup(2).status is None
    flag.unlink()
    assert list(step.run_many([1, 2])) == [101, 102]


@pytest.mark.slow
def test_an_item_already_in_a_job_of_another_process_is_not_submitted_again(
    tmp_path: Path,
) -> None:
    flag = tmp_path / "hold"
    flag.touch()
    folder = tmp_path / "cache"
    pickled = cloudpickle.dumps(
        SlowWhileFlag(flag=flag, infra={"backend": "LocalProcess", "folder": folder})
    )
    script = textwrap.dedent(
        f"""
        import cloudpickle
        step = cloudpickle.loads({pickled!r})
        print(list(step.run_many([1, 2, 3])))
        """
    )
    other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    step = SlowWhileFlag(flag=flag, infra={"backend": "LocalProcess", "folder": folder})
    deadline = time.monotonic() + 30
    while step.lookup(3).job() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    submitted = job_ids(step.lookup(1).paths.step_folder)
    assert submitted, "the other process did not submit its job"
    threading.Timer(1.0, flag.unlink).start()
    assert list(step.run_many([1, 2, 3])) == [101, 102, 103]
    assert job_ids(step.lookup(1).paths.step_folder) == submitted, "submitted twice"
    assert other.communicate(timeout=60)[0].strip() == "[101, 102, 103]"


def test_slurm_on_a_machine_without_slurm_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    step = Pid(infra={"backend": "Slurm", "folder": tmp_path})
    with pytest.raises(
        SlurmUnavailableError, match=r"'Slurm' needs Slurm, but 'sbatch' is not on PATH"
    ):
        step.run(1)
    assert step.lookup(1).status is None


def test_auto_without_slurm_runs_local_processes_and_ignores_slurm_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    infra = {"backend": "Auto", "folder": tmp_path, "partition": "gpu", "qos": "high"}
    step = Pid(infra=infra)
    value, pid = step.run(7)
    assert value == 7
    assert pid != os.getpid()
    assert isinstance(step.lookup(7).job(), submitit.LocalJob)


def test_slurm_fields_become_sbatch_options() -> None:
    backend = Slurm(
        partition="gpu",
        qos="high",
        gpus_per_node=2,
        job_name="sweep",
        use_srun=True,
        additional_parameters={"mail_type": "END"},
        timeout_min=30,
    )
    assert backend._parameters() == {
        "slurm_partition": "gpu",
        "slurm_qos": "high",
        "gpus_per_node": 2,
        "name": "sweep",
        "slurm_use_srun": True,
        "slurm_additional_parameters": {"mail_type": "END"},
        "timeout_min": 30,
    }
    assert LocalProcess(cpus_per_task=4)._parameters() == {"cpus_per_task": 4}


@pytest.mark.parametrize("name", ["LocalProcess", "SubmititDebug", "Slurm", "Auto"])
def test_every_submitit_backend_registers_under_its_class_name(name: str) -> None:
    parsed = Backend.model_validate({"backend": name, "folder": "x", "max_jobs": 4, "mem_gb": 2})
    assert type(parsed).__name__ == name
    assert parsed.model_dump()["backend"] == name
    assert isinstance(parsed, LocalProcess | SubmititDebug | Slurm | Auto)


@pytest.mark.parametrize(
    ("field", "value"), [("max_jobs", 0), ("min_items_per_job", 0), ("timeout_min", -5)]
)
def test_bad_fields_are_rejected_naming_them(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        LocalProcess.model_validate({field: value})


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="partition"):
        LocalProcess.model_validate({"partition": "gpu"})


def test_an_item_whose_job_is_still_queued_elsewhere_is_waited_for_not_resubmitted(
    tmp_path: Path,
) -> None:
    # A job submitted by another process that has not started yet holds no claim; only its
    # reference says the item is taken. Here that job is a process that ends without a result,
    # leaving a mark as it ends.
    ended = tmp_path / "ended"
    step = SeesMark(mark=ended, infra={"backend": "SubmititDebug", "folder": tmp_path / "c"})
    handle = step.lookup(5)
    queued = subprocess.Popen(
        [sys.executable, "-c", f"import time; time.sleep(1); open({str(ended)!r}, 'w').close()"]
    )
    ref = {"backend": "LocalProcess", "cluster": "local", "job_id": str(queued.pid)}
    ref["host"] = socket.gethostname()
    handle.paths.job_folder.mkdir(parents=True)
    # A job reference as a backend writes it: one file per task, naming its items.
    refs = handle.paths.job_folder / "0000000000000001-abcd1234.json"
    refs.write_text(json.dumps({"ref": ref, "uids": [handle.uid]}))
    assert _task_of(step, 5).job_ref(handle.uid) == ref
    try:
        # Once that job has ended without the item's entry, the waiter computes the item.
        assert step.run(5) == (5, True), "computed once the other job had ended, not before"
    finally:
        queued.wait()
    now = _task_of(step, 5).job_ref(handle.uid)
    assert now is not None
    assert now["job_id"] != ref["job_id"], "the item's job is now the waiter's own"


class SeesMark(Step):
    """Returns the input and whether ``mark`` exists when the item is computed."""

    mark: Path

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["mark"]

    def _run(self, value: int) -> tuple[int, bool]:
        return value, self.mark.exists()


def _task_of(step: Step, value: int) -> ItemTask:
    handle = step.lookup(value)
    return ItemTask(step=step, prefix=(), paths=handle.paths, uids=[handle.uid], values=[value])


def test_a_step_defined_in_a_module_made_at_run_time_runs_in_a_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like a notebook or a page of documentation run as a module: importable here only.
    module = types.ModuleType("made_at_run_time")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    code = textwrap.dedent(
        """
        from assay_steps import Step
        class Half(Step):
            def _run(self, value):
                return value / 2
        """
    )
    exec(code, module.__dict__)
    step = module.Half(infra={"backend": "LocalProcess", "folder": tmp_path})
    assert step.run(3) == 1.5
    assert isinstance(step.lookup(3).job(), submitit.LocalJob)


def test_submitit_backends_draw_a_progress_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("rich")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    step = Pid(infra={"backend": "SubmititDebug", "folder": tmp_path, "max_jobs": 2})
    list(step.run_many(range(4)))
    assert "4/4" in terminal.getvalue()
    assert "2 jobs" in terminal.getvalue()


def test_debug_jobs_run_from_a_thread_other_than_the_main_one(tmp_path: Path) -> None:
    step = Pid(infra={"backend": "SubmititDebug", "folder": tmp_path})
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.extend(step.run_many([1, 2])))
    worker.start()
    worker.join(30)
    assert [value for value, _ in results] == [1, 2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Job 12 (task: 0) with path /l/12_0_result.pkl\n"
            "has not produced any output (state: CANCELLED)\nError stream produced:\n"
            + "-"
            * 40
            + "\nsubmitit INFO (2026-01-01 00:00:00,000) - Starting with JobEnvironment()\n"
            "slurmstepd: error: *** JOB 12 ON vm CANCELLED AT 2026-01-01T00:00:01 ***\n",
            "slurmstepd: error: *** JOB 12 ON vm CANCELLED AT 2026-01-01T00:00:01 ***",
        ),
        (
            "Job 7 (task: 0) with path /l/7_0_result.pkl\n"
            "has not produced any output (state: FINISHED)\n"
            "No error stream produced. Look at stdout: /l/7_0_log.out\n"
            + "-" * 40
            + "\nsubmitit INFO (2026-01-01 00:00:00,000) - Loading pickle: /l/7_submitted.pkl\n",
            "its process ended without writing a result",
        ),
        (
            "Job (task=0) failed during processing with trace:\n"
            + "-" * 40
            + "\nTraceback (most recent call last):\n  File 'x.py', line 1\nValueError: bad\n",
            "ValueError: bad",
        ),
    ],
)
def test_the_reason_of_a_failed_job_is_its_telling_line(text: str, expected: str) -> None:
    from assay_backends._failures import reason

    assert reason(text) == expected
