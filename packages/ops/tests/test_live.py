"""Live metrics and early stopping: a capture reports to its channel, a pruned run says so."""

from __future__ import annotations

import copy
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_ops import Capture, LiveChannel, RunRecord, operation
from assay_ops._record import RECORD_FORMAT, STATUSES


class Channel:
    """Keeps what it is told; says prune once it has seen ``prune_after`` values."""

    def __init__(self, prune_after: int | None = None) -> None:
        self.reports: list[tuple[str, Any, int | None]] = []
        self.prune_after = prune_after
        self.asked = 0

    def report(self, name: str, value: Any, step: int | None) -> None:
        self.reports.append((name, value, step))

    def should_prune(self) -> bool:
        self.asked += 1
        return self.prune_after is not None and len(self.reports) >= self.prune_after


class Broken(Channel):
    """A channel whose storage has failed: every call raises."""

    def report(self, name: str, value: Any, step: int | None) -> None:
        raise OSError(28, "No space left on device", "runs/r1/live.jsonl")

    def should_prune(self) -> bool:
        raise OSError(5, "Input/output error", "runs/r1/prune")


@operation
def three_steps(capture: Capture) -> None:
    for step in range(3):
        capture.metric("loss", 1.0 / (step + 1), step=step)
        if capture.should_prune():
            return


@operation
def fails_after_prune(capture: Capture) -> None:
    capture.metric("loss", 1.0, step=0)
    if capture.should_prune():
        raise RuntimeError("cleanup failed while stopping early")


@operation
def interrupted_after_prune(capture: Capture) -> None:
    capture.metric("loss", 1.0, step=0)
    if capture.should_prune():
        raise KeyboardInterrupt


@operation
def ignores_prune(capture: Capture) -> dict[str, float]:
    for step in range(3):
        capture.metric("loss", 1.0 / (step + 1), step=step)
        capture.should_prune()  # asked, but the loop goes on
    return {"final": 0.25}


def test_a_plain_object_with_both_methods_is_a_live_channel() -> None:
    assert isinstance(Channel(), LiveChannel)
    assert not isinstance(object(), LiveChannel)
    with pytest.raises(TypeError, match=r"live=.*expected a LiveChannel"):
        Capture(live=object())  # type: ignore[arg-type]


def test_accepted_metrics_are_reported_in_order_with_their_step() -> None:
    channel = Channel()
    capture = Capture(live=channel)
    capture.metric("loss", 0.5, step=np.int64(3))
    capture.log_metrics({"acc": 0.75, "lr": 0.1}, step=4)
    capture.metric("note", "warmup")
    with pytest.raises(TypeError):
        capture.metric("bad", object())
    with pytest.raises(ValueError, match=r"step=1\.5"):
        capture.metric("loss", 0.1, step=1.5)  # type: ignore[arg-type]
    assert channel.reports == [
        ("loss", 0.5, 3),
        ("acc", 0.75, 4),
        ("lr", 0.1, 4),
        ("note", "warmup", None),
    ]
    assert type(channel.reports[0][2]) is int  # a numpy step reaches the channel as an int
    assert capture.metrics.as_dict()["loss"] == (0.5,)


def test_a_failing_channel_keeps_every_metric_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture = Capture(live=Broken())
    with caplog.at_level(logging.WARNING, logger="assay_ops.capture"):
        for step in range(3):
            capture.metric("loss", float(step), step=step)
        assert capture.should_prune() is False
    assert capture.metrics.as_dict()["loss"] == (0.0, 1.0, 2.0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "No space left on device" in warnings[0].getMessage()
    assert "Broken.report" in warnings[0].getMessage()
    assert len(capture.logs) == 1
    assert "WARNING" in capture.logs[0]
    assert not capture.pruned


def test_a_run_whose_channel_fails_succeeds_with_its_metrics_and_the_warning() -> None:
    record = three_steps.run(capture=Capture(live=Broken()))
    assert record.status == "success"
    assert record.metrics == {"loss": [1.0, 0.5, 1.0 / 3]}
    assert len(record.logs) == 1
    assert "live channel" in record.logs[0]


def test_should_prune_is_false_without_a_channel_and_stays_true_once_said() -> None:
    assert Capture().should_prune() is False
    channel = Channel(prune_after=1)
    capture = Capture(live=channel)
    assert capture.should_prune() is False
    assert not capture.pruned
    capture.metric("loss", 1.0)
    assert capture.should_prune() is True
    assert capture.pruned
    channel.prune_after = None  # a channel changing its mind does not revive the run
    assert capture.should_prune() is True
    with pytest.raises(AttributeError):
        capture.pruned = False


def test_an_operation_that_returns_when_told_is_pruned_with_its_metrics_so_far() -> None:
    channel = Channel(prune_after=2)
    record = three_steps.run(capture=Capture(live=channel))
    assert record.status == "pruned"
    assert record.pruned
    assert not record.ok
    assert record.error is None
    assert record.metrics == {"loss": [1.0, 0.5]}
    assert [tags["step"] for tags in record.metric_tags["loss"]] == [0, 1]
    assert channel.reports == [("loss", 1.0, 0), ("loss", 0.5, 1)]


def test_the_same_operation_with_a_channel_that_never_prunes_succeeds() -> None:
    channel = Channel()
    record = three_steps.run(capture=Capture(live=channel))
    assert record.status == "success"
    assert record.ok
    assert not record.pruned
    assert record.metrics == {"loss": [1.0, 0.5, 1.0 / 3]}
    assert channel.asked == 3
    assert three_steps.run().status == "success"  # no channel at all


def test_an_error_after_the_prune_decision_is_still_a_failure() -> None:
    record = fails_after_prune.run(capture=Capture(live=Channel(prune_after=1)))
    assert record.status == "failed"
    assert record.error is not None
    assert "cleanup failed" in record.error.message
    assert record.metrics == {"loss": [1.0]}


def test_ctrl_c_after_the_prune_decision_is_still_cancelled() -> None:
    with pytest.raises(KeyboardInterrupt) as stopped:
        interrupted_after_prune.run(capture=Capture(live=Channel(prune_after=1)))
    assert stopped.value.run_record.status == "cancelled"  # type: ignore[attr-defined]


def test_returning_normally_after_a_prune_decision_is_pruned_returned_metrics_kept() -> None:
    record = ignores_prune.run(capture=Capture(live=Channel(prune_after=1)))
    assert record.status == "pruned"
    assert record.metrics == {"loss": [1.0, 0.5, 1.0 / 3], "final": [0.25]}


def test_a_pruned_record_round_trips_through_json(tmp_path: Path) -> None:
    assert "pruned" in STATUSES
    record = three_steps.run(capture=Capture(live=Channel(prune_after=1)))
    assert record.status == "pruned"
    text = record.to_json()
    assert f'"format": "{RECORD_FORMAT}"' in text
    assert RECORD_FORMAT == "assay.run-record/1"
    again = RunRecord.from_json(text)
    assert again == record
    assert again.status == "pruned"
    assert again.pruned
    assert RunRecord.from_json(record.to_json(indent=None)) == record
    assert RunRecord.load(record.save(tmp_path).parent) == record


def test_a_capture_with_a_channel_holding_an_open_file_pickles_without_it(
    tmp_path: Path,
) -> None:
    class FileChannel(Channel):
        def __init__(self, path: Path) -> None:
            super().__init__()
            self.handle = open(path, "a")  # noqa: SIM115 - held for the run, as a stream may

        def report(self, name: str, value: Any, step: int | None) -> None:
            self.handle.write(f"{name} {value} {step}\n")

    channel = FileChannel(tmp_path / "live.txt")
    try:
        capture = Capture(live=channel, artifact_dir=tmp_path / "artifacts")
        capture.metric("loss", 0.5, step=1)
        for copied in (pickle.loads(pickle.dumps(capture)), copy.deepcopy(capture)):
            assert copied.live is None  # a copy's metrics never reach the run's record
            assert copied.metrics.as_dict()["loss"] == (0.5,)
            assert copied.artifact_dir == tmp_path / "artifacts"
            copied.metric("loss", 0.25)  # recorded by the copy, not streamed
        assert capture.live is channel
        shallow = copy.copy(capture)  # same metrics as the run: the same stream
        assert shallow.live is channel
        assert shallow.metrics is capture.metrics
        shallow.metric("acc", 0.75)
    finally:
        channel.handle.close()
    assert (tmp_path / "live.txt").read_text() == "loss 0.5 1\nacc 0.75 None\n"
