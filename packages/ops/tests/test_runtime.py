"""Runtime: scratch made on demand and removed, a run directory, resource hints."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from assay_ops import Runtime


def test_scratch_is_created_on_demand_and_removed(tmp_path: Path) -> None:
    runtime = Runtime(scratch_root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing until asked
    scratch = runtime.scratch_dir
    assert scratch.is_dir()
    assert scratch.parent == tmp_path
    assert runtime.scratch_dir == scratch  # the same folder for the whole run
    runtime.cleanup()
    runtime.cleanup()  # twice is fine
    assert not scratch.exists()
    with pytest.raises(
        RuntimeError, match=rf"scratch folder {re.escape(str(scratch))} was removed"
    ):
        _ = runtime.scratch_dir  # the run is over: no new folder that nothing would remove
    assert list(tmp_path.iterdir()) == []
    with runtime:  # entered again: a fresh folder for the new use
        again = runtime.scratch_dir
        assert again.is_dir()
        assert again != scratch
    assert list(tmp_path.iterdir()) == []


def test_context_manager_cleans_up(tmp_path: Path) -> None:
    with Runtime(scratch_root=tmp_path) as runtime:
        (runtime.scratch_dir / "f").write_text("x")
    assert list(tmp_path.iterdir()) == []


def test_keep_scratch(tmp_path: Path) -> None:
    runtime = Runtime(scratch_root=tmp_path, keep_scratch=True)
    scratch = runtime.scratch_dir
    runtime.cleanup()
    assert scratch.is_dir()
    assert runtime.scratch_dir == scratch  # still readable, for inspection
    unused = Runtime(scratch_root=tmp_path / "unused", keep_scratch=True)
    unused.cleanup()
    with pytest.raises(RuntimeError, match=r"made no scratch folder.*keep_scratch=True"):
        _ = unused.scratch_dir  # keeping is not making one after the run
    assert not (tmp_path / "unused").exists()


def test_run_dir_is_created_on_first_use(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path / "runs" / "r1")
    assert runtime.has_run_dir
    assert not (tmp_path / "runs").exists()
    assert runtime.run_dir.is_dir()
    runtime.cleanup()
    assert runtime.run_dir.is_dir()  # outputs outlive the run


def test_no_run_dir_is_a_clear_error() -> None:
    runtime = Runtime()
    assert not runtime.has_run_dir
    with pytest.raises(RuntimeError, match=r"no run directory.*Runtime\(run_dir=\.\.\.\)"):
        _ = runtime.run_dir


def test_resource_hints_and_backend() -> None:
    runtime = Runtime(cpus=4, gpus=1, memory=16000, backend="slurm", job="1234_5")
    assert runtime.to_dict() == {
        "backend": "slurm",
        "job": "1234_5",
        "cpus": 4,
        "gpus": 1,
        "memory": 16000,
        "run_dir": None,
    }
    assert Runtime().to_dict()["backend"] == "inline"
    assert Runtime().to_dict()["job"] is None
    assert "cpus=4" in repr(runtime)
    assert pickle.loads(pickle.dumps(runtime)).to_dict() == runtime.to_dict()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cpus": 0}, "cpus=0: expected an int >= 1"),
        ({"cpus": 1.5}, "cpus=1.5"),
        ({"gpus": -1}, "gpus=-1: expected an int >= 0"),
        ({"memory": 0}, "memory=0"),
        ({"backend": ""}, "backend=''"),
    ],
)
def test_bad_hints_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Runtime(**kwargs)


@pytest.mark.parametrize(
    "text",
    ["runs/r1", "/abs/r1", "a//r1", "a/./r1", "a/r1/", "./runs", ".", "/", "//x", "a/../b"],
)
def test_run_dir_is_recorded_as_pathlib_prints_it(text: str) -> None:
    assert Runtime(text).to_dict()["run_dir"] == str(Path(text))
    assert Runtime(Path(text)).to_dict()["run_dir"] == str(Path(text))


def test_run_dir_of_a_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"run_dir=3: expected a str or Path"):
        Runtime(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("used", [True, False], ids=["scratch-used", "scratch-unused"])
def test_scratch_dir_after_the_run_makes_no_folder(tmp_path: Path, used: bool) -> None:
    from assay_ops import operation

    @operation
    def work(runtime: Runtime) -> None:
        if used:
            (runtime.scratch_dir / "f.txt").write_text("x")

    runtime = Runtime(scratch_root=tmp_path)
    work.run(runtime=runtime)
    with pytest.raises(RuntimeError, match="scratch"):
        _ = runtime.scratch_dir
    assert list(tmp_path.iterdir()) == []  # nothing left behind, nothing made again


def test_a_runtime_passed_to_several_runs_gets_a_scratch_folder_in_each(tmp_path: Path) -> None:
    from assay_ops import operation

    seen: list[Path] = []

    @operation
    def work(runtime: Runtime) -> None:
        seen.append(runtime.scratch_dir)
        (runtime.scratch_dir / "f.txt").write_text("x")

    runtime = Runtime(scratch_root=tmp_path)
    assert work.run(runtime=runtime).ok
    assert work.run(runtime=runtime).ok  # not refused: a new run opens the runtime again
    assert len(set(seen)) == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("job", ["", 1234])
def test_a_job_must_be_a_non_empty_identifier(job: object) -> None:
    with pytest.raises(ValueError, match=rf"job={job!r}: expected a non-empty job identifier"):
        Runtime(job=job)  # type: ignore[arg-type]
