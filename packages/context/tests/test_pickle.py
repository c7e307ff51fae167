"""A context, its metrics and artifacts survive pickling intact (to ship to workers)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
from assay_context import ArtifactLog, ContextMutationError, FrozenContext, FrozenMetrics, freeze


class Box:
    def __init__(self, items: list[int]) -> None:
        self.items = items


def roundtrip(value: object) -> object:
    return pickle.loads(pickle.dumps(value))


def test_context_roundtrip_keeps_values_metrics_artifacts_and_rules(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"data")
    ctx = FrozenContext({"cfg": {"layers": [1, 2]}, "box": Box([1])})
    ctx.record("loss", 0.5, tags={"epoch": 1})
    ctx.artifacts.add("f.bin", file, metadata={"kind": "weights"})
    ctx.artifacts.add("obj.pkl", {"a": 1})
    copy = roundtrip(ctx)
    assert isinstance(copy, FrozenContext)
    assert copy.as_dict()["cfg"] == {"layers": [1, 2]}
    assert copy["box"].items == [1]
    copy["box"].items.append(2)
    assert copy["box"].items == [1]  # still copied on read
    assert copy.metrics == ctx.metrics
    assert copy.artifacts == ctx.artifacts
    assert copy.artifacts["f.bin"].metadata == {"kind": "weights"}
    with pytest.raises(ContextMutationError):
        copy["cfg"] = {}
    with pytest.raises(TypeError):
        copy["cfg"]["layers"] = ()
    with pytest.raises(TypeError):
        copy["cfg"]["layers"].append(3)


def test_a_named_logger_comes_back() -> None:
    ctx = FrozenContext({}, logger=logging.getLogger("test.assay.pickle"))
    assert roundtrip(ctx).logger is logging.getLogger("test.assay.pickle")  # type: ignore[attr-defined]


def test_arrays_stay_read_only_after_a_roundtrip() -> None:
    np = pytest.importorskip("numpy")
    ctx = FrozenContext({"w": np.arange(3.0), "nested": [np.ones(2)]})
    ctx.record("hist", np.array([1, 2]))
    ctx.artifacts.add("a.npy", np.zeros(2))
    copy = roundtrip(ctx)
    assert isinstance(copy, FrozenContext)
    for array in (
        copy["w"],
        copy["nested"][0],
        copy.metrics["hist"][0],
        copy.artifacts["a.npy"].data,
    ):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 5
    assert copy["w"].tolist() == [0.0, 1.0, 2.0]


def test_metrics_and_artifact_logs_pickle_alone() -> None:
    metrics = FrozenMetrics()
    metrics.add("m", 1, tags={"t": [1]})
    log = ArtifactLog()
    log.add("a", b"x", step_name="s")
    assert roundtrip(metrics) == metrics
    assert roundtrip(log) == log
    assert roundtrip(log)["a"].step_name == "s"  # type: ignore[index]


def test_a_worker_result_merges_back_into_the_parent() -> None:
    run = FrozenContext({"lr": 0.1, "cfg": {"a": [1]}, "box": Box([1]), "nan": float("nan")})
    worker = roundtrip(run.child())
    assert isinstance(worker, FrozenContext)
    worker.add("score", 0.9)
    worker.record("acc", 0.9)
    run.merge(worker)  # the inherited keys are equal values, not conflicts
    run.metrics.extend(worker.metrics)
    assert run["score"] == 0.9
    assert run.metrics["acc"] == (0.9,)
    with pytest.raises(ContextMutationError, match="'box'"):
        run.merge({"box": Box([2])})  # a different value never overwrites through merge
    assert run["box"].items == [1]


def test_the_error_of_freeze_pickles_with_its_message_and_value() -> None:
    with pytest.raises(TypeError) as caught:
        freeze({"model": Box([1])})
    copy = roundtrip(caught.value)
    assert type(copy) is type(caught.value)
    assert str(copy) == str(caught.value)
    assert isinstance(getattr(copy, "value", None), Box)
