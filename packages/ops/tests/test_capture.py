"""Capture records into assay_context's FrozenMetrics and ArtifactLog, not a twin of them."""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from assay_context import ArtifactLog, ContextMutationError, FrozenContext, FrozenMetrics
from assay_ops import Capture


def test_metrics_go_into_a_frozen_metrics_with_step_and_tags() -> None:
    metrics = FrozenMetrics()
    capture = Capture(metrics)
    capture.metric("loss", 0.9, step=1, tags={"split": "train"})
    capture.metric("loss", 0.5, step=2)
    capture.metric("acc", np.float32(0.75))
    assert capture.metrics is metrics
    assert metrics.as_dict()["loss"] == (0.9, 0.5)
    assert dict(metrics.get_tags("loss")[0]) == {"split": "train", "step": 1}
    assert dict(metrics.get_tags("acc")[0]) == {}
    values, tags = capture.metric_series()
    assert values == {"loss": [0.9, 0.5], "acc": [np.float32(0.75)]}
    assert tags["loss"] == [{"split": "train", "step": 1}, {"step": 2}]


def test_list_tags_reach_the_series_as_plain_lists() -> None:
    # The context layer hands a stored list back read-only; a run's record holds plain data.
    capture = Capture()
    capture.metric("loss", 0.5, tags={"layers": [64, 32], "shape": (2, 3)})
    _, tags = capture.metric_series()
    layers = tags["loss"][0]["layers"]
    assert type(layers) is list
    assert layers == [64, 32]
    assert tags["loss"][0]["shape"] == (2, 3)
    layers.append(16)  # the series is the caller's to change
    assert capture.metric_series()[1]["loss"][0]["layers"] == [64, 32]


def test_log_metrics_records_several_at_once() -> None:
    capture = Capture()
    capture.log_metrics({"a": 1, "b": 2.0}, step=3)
    assert capture.metrics.as_dict() == {"a": (1,), "b": (2.0,)}
    assert capture.metrics.get_tags("b")[0]["step"] == 3


def test_bad_metrics_are_refused_naming_the_metric() -> None:
    capture = Capture()
    with pytest.raises(ValueError, match=r"'loss': step='one': expected an int"):
        capture.metric("loss", 1.0, step="one")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"step=2 disagrees with tags\['step'\]=1"):
        capture.metric("loss", 1.0, step=2, tags={"step": 1})
    with pytest.raises(TypeError, match="'loss'"):
        capture.metric("loss", object())
    with pytest.raises(ValueError, match="'2bad'"):
        capture.metric("2bad", 1.0)


def test_for_context_records_into_the_contexts_metrics_and_artifacts() -> None:
    context = FrozenContext({})
    capture = Capture.for_context(context)
    capture.metric("loss", 0.1)
    capture.artifact("notes.txt", "text")
    assert context.metrics.as_dict()["loss"] == (0.1,)
    assert "notes.txt" in context.artifacts
    assert capture.logger is context.logger


def test_log_keeps_messages_and_forwards_them(caplog: pytest.LogCaptureFixture) -> None:
    capture = Capture()
    with caplog.at_level(logging.DEBUG, logger="assay_ops.capture"):
        capture.log("started")
        capture.log("odd value", level="warning")
    assert capture.logs[0].endswith("INFO started")
    assert capture.logs[1].endswith("WARNING odd value")
    assert [r.getMessage() for r in caplog.records] == ["started", "odd value"]
    assert caplog.records[1].levelno == logging.WARNING
    with pytest.raises(ValueError, match="level='loud'"):
        capture.log("x", level="loud")


class Model:
    def __init__(self, weights: list[float]) -> None:
        self.weights = weights


def test_artifacts_of_every_kind_go_into_an_artifact_log(tmp_path: Path) -> None:
    log = ArtifactLog()
    capture = Capture(artifacts=log)
    source = tmp_path / "plot.png"
    source.write_bytes(b"png")
    capture.artifact("raw.bin", b"\x01\x02")
    capture.artifact("notes.txt", "hello")
    capture.file("plot.png", source)
    capture.artifact("weights.npy", np.arange(3))
    description = capture.artifact("model.pkl", Model([0.5]), metadata={"epoch": 3})
    assert log.names() == ("raw.bin", "notes.txt", "plot.png", "weights.npy", "model.pkl")
    assert [a["kind"] for a in capture.artifact_descriptions()] == [
        "bytes",
        "text",
        "path",
        "array",
        "object",
    ]
    assert description["metadata"] == {"epoch": 3}
    assert (
        description["sha256"]
        == hashlib.sha256(
            pickle.dumps(log["model.pkl"].data, protocol=pickle.HIGHEST_PROTOCOL)
        ).hexdigest()
    )
    assert capture.artifact_descriptions()[0]["sha256"] == hashlib.sha256(b"\x01\x02").hexdigest()
    assert "path" not in description  # no artifact folder: kept in memory only


def test_artifacts_are_written_as_files_when_given_a_folder(tmp_path: Path) -> None:
    capture = Capture(artifact_dir=tmp_path / "artifacts")
    capture.artifact("weights.npy", np.arange(4.0))
    capture.artifact("model.pkl", Model([1.0]))
    capture.artifact("notes.txt", "hi")
    folder = tmp_path / "artifacts"
    assert np.array_equal(np.load(folder / "weights.npy"), np.arange(4.0))
    assert pickle.loads((folder / "model.pkl").read_bytes()).weights == [1.0]
    assert (folder / "notes.txt").read_text() == "hi"
    assert [a["path"] for a in capture.artifact_descriptions()] == [
        str(folder / n) for n in ("weights.npy", "model.pkl", "notes.txt")
    ]


def test_bad_artifacts_are_refused() -> None:
    capture = Capture()
    with pytest.raises(ValueError, match=r"'\.\./x'"):
        capture.artifact("../x", b"")
    capture.artifact("a", b"")
    with pytest.raises(ContextMutationError, match="'a'"):
        capture.artifact("a", b"")
    with pytest.raises(TypeError, match="'gen'"):
        capture.artifact("gen", (i for i in range(3)))
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        capture.file("m", "missing.txt")


def test_artifact_dir_given_as_text_is_a_path_and_a_wrong_type_is_refused(
    tmp_path: Path,
) -> None:
    capture = Capture(artifact_dir=str(tmp_path / "a"))
    assert capture.artifact_dir == tmp_path / "a"
    assert not (tmp_path / "a").exists()  # made when the first artifact is written
    capture.artifact("note.txt", "hi")
    assert (tmp_path / "a" / "note.txt").read_text() == "hi"
    with pytest.raises(TypeError, match=r"artifact_dir=1\.5: expected a str or Path"):
        Capture(artifact_dir=1.5)  # type: ignore[arg-type]
