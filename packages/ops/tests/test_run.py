"""What a run gives back: success, failure with its metrics, cancellation, no leaked folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from assay_context import FrozenContext
from assay_ops import Capture, RunRecord, Runtime, SeedBundle, operation


@operation
def succeeds(params: dict[str, Any], seeds: SeedBundle, runtime: Runtime, capture: Capture) -> None:
    (runtime.scratch_dir / "work.txt").write_text("temporary")
    capture.metric("draw", seeds.numpy().random())
    capture.log("done")


@operation
def fails(runtime: Runtime, capture: Capture) -> None:
    (runtime.scratch_dir / "work.txt").write_text("temporary")
    capture.metric("loss", 0.9, step=1)
    capture.metric("loss", 0.5, step=2)
    raise ValueError("diverged at step 3")


@operation
def interrupted(runtime: Runtime, capture: Capture) -> None:
    (runtime.scratch_dir / "work.txt").write_text("temporary")
    capture.metric("loss", 0.9)
    raise KeyboardInterrupt


def test_a_successful_run_gives_a_complete_record(tmp_path: Path) -> None:
    record = succeeds.run(params={"lr": 0.1}, runtime=Runtime(scratch_root=tmp_path))
    assert record.status == "success"
    assert record.ok
    assert record.error is None
    assert record.operation == "succeeds"
    assert record.ref.endswith(":succeeds")
    assert record.code_hash == succeeds.code_hash != ""
    assert record.params == {"lr": 0.1}
    assert record.seed == SeedBundle(params={"lr": 0.1}).key
    assert record.metric("draw") == SeedBundle(params={"lr": 0.1}).numpy().random()
    assert record.logs[0].endswith("INFO done")
    assert record.duration >= 0
    assert record.started_at <= record.ended_at
    assert record.runtime["backend"] == "inline"


def test_the_run_id_is_the_same_for_the_same_run_and_differs_otherwise() -> None:
    a = succeeds.run(params={"lr": 0.1}).run_id
    assert a == succeeds.run(params={"lr": 0.1}).run_id
    assert a != succeeds.run(params={"lr": 0.2}).run_id
    assert (
        a
        != succeeds.run(
            params={"lr": 0.1}, seeds=SeedBundle(params={"lr": 0.1}, replicate=1)
        ).run_id
    )
    assert succeeds.run(params={"lr": 0.1}, run_id="mine").run_id == "mine"


def test_an_exception_gives_a_failed_record_that_keeps_earlier_metrics(tmp_path: Path) -> None:
    record = fails.run(runtime=Runtime(scratch_root=tmp_path))
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.type == "builtins.ValueError"
    assert record.error.message == "diverged at step 3"
    assert "raise ValueError" in record.error.traceback
    assert record.metrics == {"loss": [0.9, 0.5]}
    assert record.metric_tags == {"loss": [{"step": 1}, {"step": 2}]}
    assert RunRecord.from_json(record.to_json()) == record


def test_keyboard_interrupt_gives_a_cancelled_record_and_is_re_raised(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        interrupted.run(runtime=Runtime(scratch_root=tmp_path))
    record = caught.value.run_record  # type: ignore[attr-defined]
    assert isinstance(record, RunRecord)
    assert record.status == "cancelled"
    assert record.error is not None
    assert record.error.type == "builtins.KeyboardInterrupt"
    assert record.metrics == {"loss": [0.9]}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("op", [succeeds, fails])
def test_no_temporary_folder_leaks_after_success_or_failure(op: Any, tmp_path: Path) -> None:
    record = op.run(runtime=Runtime(scratch_root=tmp_path))
    assert record.status in ("success", "failed")
    assert list(tmp_path.iterdir()) == []


def test_no_leak_in_the_system_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default scratch root is the system temp folder; point it here to watch it.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    succeeds.run()
    fails.run()
    assert list(tmp_path.iterdir()) == []


def test_scratch_is_kept_when_asked(tmp_path: Path) -> None:
    succeeds.run(runtime=Runtime(scratch_root=tmp_path, keep_scratch=True))
    (kept,) = tmp_path.iterdir()
    assert (kept / "work.txt").read_text() == "temporary"


def test_the_operation_sees_a_child_context_that_records_into_the_run() -> None:
    shared = FrozenContext({"dataset": "mnist"})

    @operation
    def op(context: FrozenContext, capture: Capture) -> None:
        context.record("from_context", 1.0)
        capture.metric("from_capture", 2.0)
        context.add("derived", context["dataset"].upper())

    record = op.run(shared)
    assert record.metrics == {"from_context": [1.0], "from_capture": [2.0]}
    # The shared context is untouched: no key added, no metric from this run.
    assert "derived" not in shared
    assert len(shared.metrics) == 0
    assert op.run(shared).metrics == record.metrics


def test_an_explicit_capture_receives_the_metrics() -> None:
    capture = Capture()
    succeeds.run(capture=capture)
    assert list(capture.metrics.as_dict()) == ["draw"]


def test_artifacts_are_written_to_the_run_directory(tmp_path: Path) -> None:
    @operation
    def op(runtime: Runtime, capture: Capture) -> None:
        made = runtime.scratch_dir / "plot.txt"
        made.write_text("a plot")
        capture.artifact("plot.txt", made)  # made in scratch, which is removed after the run
        capture.artifact("raw.bin", b"\x00\x01")

    runtime = Runtime(tmp_path / "run", scratch_root=tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    record = op.run(runtime=runtime)
    assert record.status == "success", record.error
    by_name = {a["name"]: a for a in record.artifacts}
    assert Path(by_name["plot.txt"]["path"]).read_text() == "a plot"
    assert Path(by_name["raw.bin"]["path"]).read_bytes() == b"\x00\x01"
    assert record.runtime["run_dir"] == str(tmp_path / "run")
    assert list((tmp_path / "scratch").iterdir()) == []


def test_bad_params_are_refused_with_a_clear_message() -> None:
    with pytest.raises(TypeError, match="params key 1 has type int; expected a str"):
        succeeds.run(params={1: "a"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"params=\[1\]: expected a mapping"):
        succeeds.run(params=[1])  # type: ignore[arg-type]


def test_the_record_is_json(tmp_path: Path) -> None:
    record = succeeds.run(params={"lr": 0.1, "shape": (2, 3)})
    data = json.loads(record.to_json())
    assert data["status"] == "success"
    assert RunRecord.from_json(record.to_json()).params == {"lr": 0.1, "shape": (2, 3)}


def test_a_logging_context_reports_the_keys_the_run_read() -> None:
    from assay_context import LoggingContext

    @operation
    def op(context: FrozenContext, capture: Capture) -> None:
        capture.metric("n", len(context["data"]))
        context.record("seen", 1)

    shared = LoggingContext(FrozenContext({"data": [1, 2], "unused": 0}))
    record = op.run(shared)
    assert set(shared.reads) == {"data"}
    assert record.metrics == {"n": [2], "seen": [1]}


def test_a_plain_mapping_is_accepted_as_context_and_other_things_are_not() -> None:
    @operation
    def op(context: FrozenContext, capture: Capture) -> None:
        capture.metric("lr", context["lr"])

    assert op.run({"lr": 0.5}).metric("lr") == 0.5
    # The caller's mistake, not the operation's: raised before anything runs.
    with pytest.raises(TypeError, match="context=42 of type int: expected a FrozenContext"):
        op.run(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="run_id=''"):
        op.run(run_id="")
