"""Job settings of the submitit backends: setup lines, code snapshots, log folder, arrays."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from assay_backends import LocalProcess, Slurm, SubmititDebug, _arrays, _states
from assay_backends._signals import JobOptions
from assay_backends._snapshot import snapshot_code
from assay_steps import Step

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Environ(Step):
    """Returns an environment variable and the working directory of the job."""

    def _run(self, name: str) -> tuple[str | None, str]:
        return os.environ.get(name), os.getcwd()


def test_setup_lines_run_before_the_job(tmp_path: Path) -> None:
    infra = {"backend": "LocalProcess", "folder": tmp_path, "setup": ["export ASSAY_MARK=set-up"]}
    assert Environ(infra=infra).run("ASSAY_MARK")[0] == "set-up"


def test_a_venv_that_does_not_exist_is_refused_naming_it(tmp_path: Path) -> None:
    infra = {"backend": "LocalProcess", "folder": tmp_path, "venv": str(tmp_path / "nope")}
    with pytest.raises(ValueError, match=r"venv=.*nope.*bin/activate"):
        Environ(infra=infra).run("X")


def test_a_venv_is_activated_and_its_python_runs_the_job(tmp_path: Path) -> None:
    venv = tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    # A stand-in for a virtual environment whose python is this interpreter.
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    (venv / "bin" / "activate").write_text(
        f"export PATH={venv / 'bin'}:$PATH\nexport ASSAY_VENV_ACTIVE=1\n"
    )
    infra = {"backend": "LocalProcess", "folder": tmp_path / "c", "venv": str(venv)}
    assert Environ(infra=infra).run("ASSAY_VENV_ACTIVE")[0] == "1"


def test_logs_go_to_the_log_folder_of_the_users_choice(tmp_path: Path) -> None:
    infra = {"backend": "LocalProcess", "folder": tmp_path / "c", "log_folder": tmp_path / "L"}
    step = Environ(infra=infra)
    step.run("HOME")
    job = step.lookup("HOME").job()
    assert job is not None
    assert job.paths.stdout.parent.parent == tmp_path / "L"
    assert job.paths.stdout.exists()
    assert not step.lookup("HOME").paths.logs_folder.exists()


@contextlib.contextmanager
def project(tmp_path: Path, value: int) -> Iterator[Path]:
    """A project folder (no git) with a module ``snapmod`` returning ``value``, as cwd."""
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "snapmod.py").write_text(f"def value():\n    return {value}\n")
    cwd = os.getcwd()
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        os.chdir(cwd)
        sys.path.remove(str(folder))
        sys.modules.pop("snapmod", None)


class UsesModule(Step):
    """Imports ``snapmod`` once ``go`` exists and returns what it says."""

    go: Path

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["go"]

    def _run(self, value: int) -> tuple[int, str]:
        while not self.go.exists():
            time.sleep(0.02)
        import snapmod  # type: ignore[import-not-found]

        return snapmod.value(), os.getcwd()


def test_a_code_snapshot_keeps_queued_jobs_on_the_code_of_their_submission(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    with project(tmp_path, 1) as folder:
        infra = {
            "backend": "LocalProcess",
            "folder": tmp_path / "cache",
            "code_snapshot": tmp_path / "snapshots",
        }
        step = UsesModule(go=go, infra=infra)
        outcome: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: outcome.update(r=step.run(7)), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while step.lookup(7).job() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # Submitted: the code changes before the job imports it.
        (folder / "snapmod.py").write_text("def value():\n    return 2\n")
        go.touch()
        thread.join(60)
    value, cwd = outcome["r"]
    assert value == 1, "the job ran the code as it was at submission"
    assert Path(cwd).parent == tmp_path / "snapshots", "the job started in the snapshot"
    snapshots = list((tmp_path / "snapshots").iterdir())
    assert len(snapshots) == 1
    assert (snapshots[0] / "snapmod.py").read_text().endswith("return 1\n")


def test_a_snapshot_is_named_by_content_and_skips_caches(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("A = 1\n")
    (root / "cache").mkdir()
    (root / "cache" / "stray.py").write_text("")
    (root / ".venv").mkdir()
    (root / ".venv" / "x.py").write_text("")
    (root / "data.csv").write_text("1,2\n")
    first = snapshot_code(root / "snaps", exclude=[root / "cache"], cwd=root)
    again = snapshot_code(root / "snaps", exclude=[root / "cache"], cwd=root)
    assert first == again, "the same code, the same folder, copied once"
    copied = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert copied == [".assay-snapshot", "pkg/a.py"]
    (root / "pkg" / "a.py").write_text("A = 2\n")
    assert snapshot_code(root / "snaps", exclude=[root / "cache"], cwd=root) != first


def test_in_a_git_work_tree_the_snapshot_holds_the_tracked_files(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    run = {"cwd": root, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
    (root / "tracked.txt").write_text("t\n")
    (root / "new.py").write_text("N = 1\n")
    (root / "ignored.py").write_text("")
    (root / ".gitignore").write_text("ignored.py\n")
    subprocess.run(["git", "add", "tracked.txt", ".gitignore"], **run)  # type: ignore[call-overload]
    snapshot = snapshot_code(tmp_path / "snaps", cwd=root)
    copied = sorted(p.name for p in snapshot.iterdir())
    assert copied == [".assay-snapshot", ".gitignore", "new.py", "tracked.txt"]


class FakeExecutor:
    """Records what would be submitted: one batch per array."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.parallelism: list[int] = []
        self._current: list[Any] | None = None

    def update_parameters(self, **params: Any) -> None:
        self.parallelism.append(params["slurm_array_parallelism"])

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self._current = []
        yield
        self.batches.append(self._current)

    def submit(self, fn: Any, payload: bytes, options: JobOptions) -> Any:
        assert self._current is not None
        self._current.append(options)
        return object()


@pytest.mark.parametrize(("parallelism", "expected"), [(None, [3, 3, 1]), (2, [2, 2, 2])])
def test_shards_are_submitted_as_arrays_of_at_most_max_array_size_minus_one(
    monkeypatch: pytest.MonkeyPatch, parallelism: int | None, expected: list[int]
) -> None:
    monkeypatch.setattr(_arrays, "max_array_size", lambda: 4)
    executor = FakeExecutor()
    jobs = _arrays.submit_all(executor, "slurm", [[]] * 7, JobOptions(2), parallelism)  # type: ignore[arg-type]
    assert len(jobs) == 7
    assert [len(batch) for batch in executor.batches] == [3, 3, 1]
    assert executor.parallelism == expected
    assert executor.batches[0][0] == JobOptions(max_requeues=2)


def test_max_array_size_is_read_from_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    _states.max_array_size.cache_clear()
    monkeypatch.setattr(_states, "_run", lambda command: "MaxArraySize            = 40\n")
    assert _states.max_array_size() == 40
    _states.max_array_size.cache_clear()
    monkeypatch.setattr(_states, "_run", lambda command: None)
    assert _states.max_array_size() == 1001
    _states.max_array_size.cache_clear()


def test_job_states_reads_one_squeue_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def squeue(command: list[str]) -> str:
        asked.append(command)
        return "12_0 RUNNING 1:00\n12_1 PENDING 1:00\n13 TIMEOUT 5:00\n99_1 RUNNING 1:00\n"

    monkeypatch.setattr(_states, "_run", squeue)
    states = _states.job_states(["12_0", "12_1", "13", "14"])
    assert states == {"12_0": "RUNNING", "12_1": "PENDING", "13": "TIMEOUT"}
    assert len(asked) == 1
    assert "--jobs=12,13,14" in asked[0]


def test_slurm_fields_imply_requeue_and_the_warnings_delay() -> None:
    assert Slurm(signal_delay_s=120)._slurm_extras() == {
        "slurm_signal_delay_s": 120,
        "slurm_additional_parameters": {"requeue": True},
    }
    custom = Slurm(additional_parameters={"no_requeue": True})
    assert custom._slurm_extras() == {}


def test_the_backends_say_how_they_run_items() -> None:
    assert all(backend.submits_jobs for backend in (LocalProcess, Slurm, SubmititDebug))
    assert all(backend.new_interpreter for backend in (LocalProcess, Slurm))
    assert not SubmititDebug.new_interpreter


@pytest.mark.parametrize(
    ("field", "value"),
    [("array_parallelism", 0), ("conda_env", ""), ("venv", ""), ("setup", "module load x")],
)
def test_bad_job_fields_are_rejected_naming_them(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        Slurm.model_validate({field: value})
