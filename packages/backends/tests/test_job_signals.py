"""The warning before a time limit, in local jobs: never a stop; with a checkpoint, a requeue."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import pytest
from assay_backends import current_job_logs
from assay_ops import Runtime, operation
from assay_steps import Step

if TYPE_CHECKING:  # annotations only: jobs import this module by name, without the kit
    from backends_testkit import InThread

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Warned(Step):
    """Writes its pid to ``folder/pid``, then returns once ``folder/go`` exists.

    The folder is a control channel of the test, not an input of the result.
    """

    folder: Path

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["folder"]

    def _run(self, value: int) -> tuple[int, tuple[str, str] | None]:
        (self.folder / "pid").write_text(str(os.getpid()))
        while not (self.folder / "go").exists():
            time.sleep(0.02)
        return value, current_job_logs()


@operation
def count(params: Any, runtime: Runtime) -> dict[str, Any]:
    """Counts ``n`` steps; pauses at ``pause_at`` on the first attempt for the test to signal."""
    state = runtime.checkpoint() or {"done": [], "attempts": 0}
    state["attempts"] += 1
    runtime.on_timeout(lambda: dict(state, done=list(state["done"])))
    folder = Path(params["folder"])
    for step in range(len(state["done"]), params["n"]):
        if step == params["pause_at"] and state["attempts"] == 1:
            (folder / "pid").write_text(str(os.getpid()))
            while True:  # the warning comes here; the job is requeued and this process killed
                time.sleep(0.02)
        state["done"].append(step)
    return {"total": sum(state["done"]), "attempts": state["attempts"]}


class Counts(Step):
    """Runs ``count`` as an experiment's worker would, with a run folder per item."""

    folder: Path
    pause_at: int

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["folder"]

    def _run(self, value: int) -> dict[str, Any]:
        runtime = Runtime(run_dir=self.folder / f"run-{value}")
        params = {"n": value, "pause_at": self.pause_at, "folder": str(self.folder)}
        record = count.run(params=params, runtime=runtime)
        assert record.status == "success", record.error
        return {"metrics": record.metrics, "checkpoint_left": runtime.checkpoint()}


def wait_for(path: Path, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


def test_the_warning_signal_does_not_stop_a_run_without_a_checkpoint_hook(
    tmp_path: Path, in_thread: InThread
) -> None:
    step = Warned(folder=tmp_path, infra={"backend": "LocalProcess", "folder": tmp_path / "c"})
    thread, outcome = in_thread(lambda: step.run(1))
    pid = int(wait_for(tmp_path / "pid"))
    os.kill(pid, signal.SIGUSR2)  # what Slurm sends before the time limit
    time.sleep(0.3)
    (tmp_path / "go").touch()
    thread.join(60)
    value, logs = outcome["result"]
    assert value == 1, "the run went on to its end"
    assert logs is not None
    stdout, stderr = logs
    assert "no run registered a checkpoint hook" in Path(stderr).read_text()
    assert "goes on until its time limit" in Path(stderr).read_text()
    job = step.lookup(1).job()
    assert job is not None
    assert (str(job.paths.stdout), str(job.paths.stderr)) == (stdout, stderr)


def test_a_run_with_a_checkpoint_hook_is_requeued_and_resumes_from_its_state(
    tmp_path: Path,
    in_thread: InThread,
) -> None:
    infra = {"backend": "LocalProcess", "folder": tmp_path / "c"}
    step = Counts(folder=tmp_path, pause_at=3, infra=infra)
    thread, outcome = in_thread(lambda: step.run(5))
    pid = int(wait_for(tmp_path / "pid"))
    os.kill(pid, signal.SIGUSR2)
    thread.join(60)
    assert "error" not in outcome, outcome
    result = outcome["result"]
    assert result["metrics"]["total"] == [0 + 1 + 2 + 3 + 4]
    assert result["metrics"]["attempts"] == [2], "the second attempt resumed from the checkpoint"
    assert result["checkpoint_left"] is None, "removed once the run had its record"
    stderr = step.lookup(5).job().paths.stderr  # type: ignore[union-attr]
    assert "checkpoint saved" in stderr.read_text()


def test_with_max_requeues_0_the_warning_is_ignored_even_with_a_hook(
    tmp_path: Path, in_thread: InThread
) -> None:
    infra = {"backend": "LocalProcess", "folder": tmp_path / "c", "max_requeues": 0}
    step = Counts(folder=tmp_path, pause_at=1, infra=infra)
    thread, _ = in_thread(lambda: step.run(3))
    pid = int(wait_for(tmp_path / "pid"))
    os.kill(pid, signal.SIGUSR2)
    time.sleep(1.0)
    os.kill(pid, 0)  # still alive: neither killed nor restarted
    stderr = step.lookup(3).job().paths.stderr  # type: ignore[union-attr]
    assert "max_requeues=0" in stderr.read_text()
    job = step.lookup(3).job()
    assert job is not None
    job.cancel()
    thread.join(60)


def test_current_job_logs_is_none_outside_a_job() -> None:
    assert current_job_logs() is None


@pytest.mark.parametrize(("field", "value"), [("max_requeues", -1), ("signal_delay_s", -1)])
def test_bad_signal_fields_are_rejected_naming_them(field: str, value: int) -> None:
    from assay_backends import LocalProcess

    with pytest.raises(ValueError, match=field):
        LocalProcess.model_validate({field: value})
