"""Checkpoints: a run opts in (Runtime.on_timeout), checkpoint_now saves, the next attempt reads."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path
from typing import Any

import pytest
from assay_ops import Runtime, _checkpoint, checkpoint_now, operation


@pytest.fixture(autouse=True)
def _no_hooks_left() -> Any:
    # A test that fails midway must not leave its hook to the next test.
    yield
    _checkpoint._HOOKS.clear()


def test_nothing_is_saved_when_no_run_registered_a_hook() -> None:
    assert checkpoint_now() is False


def test_a_registered_hook_is_saved_and_read_back_by_the_next_attempt(tmp_path: Path) -> None:
    first = Runtime(run_dir=tmp_path)
    assert first.checkpoint() is None  # first attempt: nothing saved yet
    state = {"epoch": 3, "weights": [1.0, 2.0]}
    first.on_timeout(lambda: state)
    assert checkpoint_now() is True
    assert (tmp_path / "checkpoint.pkl").is_file()
    # The job is requeued: the same run starts again with a new Runtime on the same folder.
    second = Runtime(run_dir=tmp_path)
    assert second.checkpoint() == state
    second.cleanup()  # the run ended
    assert not (tmp_path / "checkpoint.pkl").exists()
    first.cleanup()
    assert checkpoint_now() is False, "the ended runs' hooks are forgotten"


def test_the_hook_sees_the_state_at_the_moment_of_the_warning(tmp_path: Path) -> None:
    runtime = Runtime(run_dir=tmp_path)
    progress = {"step": 0}
    runtime.on_timeout(lambda: dict(progress))
    progress["step"] = 7
    checkpoint_now()
    assert Runtime(run_dir=tmp_path).checkpoint() == {"step": 7}
    runtime.cleanup()


def test_a_later_hook_replaces_the_earlier_one(tmp_path: Path) -> None:
    runtime = Runtime(run_dir=tmp_path)
    runtime.on_timeout(lambda: "old")
    runtime.on_timeout(lambda: "new")
    checkpoint_now()
    assert runtime.checkpoint() == "new"
    runtime.cleanup()


def test_a_failing_hook_saves_nothing_keeps_the_old_file_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = Runtime(run_dir=tmp_path)
    runtime.on_timeout(lambda: "kept")
    checkpoint_now()

    def broken() -> Any:
        raise ValueError("cannot snapshot now")

    runtime.on_timeout(broken)
    assert checkpoint_now() is False
    assert "cannot snapshot now" in capsys.readouterr().err
    assert runtime.checkpoint() == "kept"
    runtime.on_timeout(lambda: lambda: None)  # a lambda cannot be pickled
    assert checkpoint_now() is False
    assert runtime.checkpoint() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pkl"], "no temporary left"
    runtime.cleanup()


def test_on_timeout_needs_a_run_dir_and_a_callable(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"needs a run directory.*run_dir=None"):
        Runtime().on_timeout(lambda: 1)
    with pytest.raises(TypeError, match=r"save=3: expected a callable"):
        Runtime(run_dir=tmp_path).on_timeout(3)  # type: ignore[arg-type]


def test_an_unreadable_checkpoint_is_named(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pkl").write_bytes(b"not a pickle")
    with pytest.raises(RuntimeError, match=r"checkpoint\.pkl cannot be read.*delete it"):
        Runtime(run_dir=tmp_path).checkpoint()


def test_an_error_leaving_a_with_block_keeps_the_checkpoint(tmp_path: Path) -> None:
    def interrupted() -> None:
        with Runtime(run_dir=tmp_path) as runtime:
            runtime.on_timeout(lambda: "resume here")
            checkpoint_now()
            raise KeyError("interrupted")

    with pytest.raises(KeyError):
        interrupted()
    assert Runtime(run_dir=tmp_path).checkpoint() == "resume here"
    with Runtime(run_dir=tmp_path):
        pass
    assert not (tmp_path / "checkpoint.pkl").exists(), "a clean end removes it"


@operation
def counts_to(params: Any, runtime: Runtime) -> dict[str, Any]:
    """Counts to params["n"], resuming from a checkpoint; stops at params["stop_at"]."""
    state = runtime.checkpoint() or {"done": []}
    runtime.on_timeout(lambda: {"done": list(state["done"])})
    for step in range(len(state["done"]), params["n"]):
        if step == params.get("stop_at"):
            checkpoint_now()  # what the backend does when the warning comes
            raise OSError(errno.ENOSPC, "the job is killed here")  # no record, as on a kill
        state["done"].append(step)
    return {"total": sum(state["done"])}


def test_an_operation_resumes_from_its_checkpoint_and_the_record_ends_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(OSError, match="killed here"):
        counts_to.run(params={"n": 5, "stop_at": 3}, runtime=Runtime(run_dir=run_dir))
    with (run_dir / "checkpoint.pkl").open("rb") as stream:
        assert pickle.load(stream) == {"done": [0, 1, 2]}
    record = counts_to.run(params={"n": 5}, runtime=Runtime(run_dir=run_dir))
    assert record.status == "success"
    assert record.metrics["total"] == [10]
    assert not (run_dir / "checkpoint.pkl").exists(), "removed once the run has its record"


def test_a_failed_run_also_removes_its_checkpoint(tmp_path: Path) -> None:
    @operation
    def fails(runtime: Runtime) -> None:
        runtime.on_timeout(lambda: "state")
        checkpoint_now()
        raise ValueError("bad")

    record = fails.run(runtime=Runtime(run_dir=tmp_path))
    assert record.status == "failed"
    assert not (tmp_path / "checkpoint.pkl").exists()


def test_job_logs_go_into_the_record_only_when_given(tmp_path: Path) -> None:
    @operation
    def nothing() -> None:
        return None

    logs = (str(tmp_path / "1_0_log.out"), str(tmp_path / "1_0_log.err"))
    record = nothing.run(runtime=Runtime(job="1", logs=logs))
    assert record.runtime["logs"] == {"stdout": logs[0], "stderr": logs[1]}
    assert "logs" not in nothing.run(runtime=Runtime()).runtime
    with pytest.raises(ValueError, match=r"logs='x': expected a \(stdout, stderr\) tuple"):
        Runtime(logs="x")  # type: ignore[arg-type]
