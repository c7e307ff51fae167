"""LoggingContext: a proxy with the context's API that logs and remembers each key read."""

from __future__ import annotations

import logging
import pickle

import pytest
from assay_context import ContextMutationError, FrozenContext, LoggingContext


def test_reads_are_logged_at_debug_and_remembered(caplog: pytest.LogCaptureFixture) -> None:
    ctx = LoggingContext(FrozenContext({"lr": 0.1, "epochs": 3, "unused": 0}))
    with caplog.at_level(logging.DEBUG, logger="assay.context"):
        assert ctx["lr"] == 0.1
        assert ctx.get("epochs") == 3
        assert ctx.get("missing", "d") == "d"
    assert set(ctx.reads) == {"lr", "epochs"}
    assert dict(ctx.reads) == {"lr": 0.1, "epochs": 3}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("lr" in m and "0.1" in m for m in messages)
    assert any("epochs" in m for m in messages)


def test_a_given_logger_receives_the_lines(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.assay.reads")
    ctx = LoggingContext(FrozenContext({"a": 1}), logger=logger)
    with caplog.at_level(logging.DEBUG, logger="test.assay.reads"):
        ctx["a"]
    assert [r.name for r in caplog.records] == ["test.assay.reads"]
    assert ctx.logger is logger


def test_reads_is_read_only() -> None:
    ctx = LoggingContext(FrozenContext({"a": 1}))
    ctx["a"]
    with pytest.raises(TypeError):
        ctx.reads["b"] = 2  # type: ignore[index]


def test_writes_metrics_and_artifacts_go_to_the_wrapped_context() -> None:
    inner = FrozenContext({"a": 1})
    ctx = LoggingContext(inner)
    ctx.add("b", 2)
    ctx["c"] = 3
    ctx.record("loss", 0.5, tags={"epoch": 1})
    ctx.artifacts.add("x.txt", "x")
    assert inner["b"] == 2
    assert inner["c"] == 3
    assert inner.metrics.get_tags("loss") == ({"epoch": 1},)
    assert "x.txt" in inner.artifacts
    assert ctx.inner is inner
    with pytest.raises(ContextMutationError, match="'a'"):
        ctx["a"] = 5
    assert set(ctx.reads) == set()


def test_same_api_and_type_as_the_context() -> None:
    ctx = LoggingContext(FrozenContext({"a": [1], "b": 2}))
    assert isinstance(ctx, FrozenContext)
    assert "a" in ctx
    assert len(ctx) == 2
    assert list(ctx) == ["a", "b"]
    assert set(ctx.reads) == set()  # membership, length and keys read no value
    assert ctx["a"] == [1]


def test_as_dict_reads_no_key_as_in_crystallize(caplog: pytest.LogCaptureFixture) -> None:
    ctx = LoggingContext(FrozenContext({"a": 1, "b": [2]}))
    ctx["a"]
    with caplog.at_level(logging.DEBUG, logger="assay.context"):
        snapshot = ctx.as_dict()
    assert snapshot == {"a": 1, "b": [2]}
    assert set(ctx.reads) == {"a"}  # the snapshot marks nothing as read
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]
    fresh = LoggingContext(FrozenContext({"a": 1}))
    fresh.as_dict()
    assert dict(fresh.reads) == {}
    fresh.child().as_dict()
    assert dict(fresh.reads) == {}


def test_items_and_values_count_the_keys_they_return() -> None:
    ctx = LoggingContext(FrozenContext({"a": 1, "b": 2}))
    assert dict(ctx.items()) == {"a": 1, "b": 2}
    assert set(ctx.reads) == {"a", "b"}
    other = LoggingContext(FrozenContext({"a": 1}))
    assert list(other.values()) == [1]
    assert set(other.reads) == {"a"}


def test_child_reads_are_reported_by_the_parent_proxy() -> None:
    run = LoggingContext(FrozenContext({"lr": 0.1, "seed": 1}))
    step = run.child()
    assert isinstance(step, LoggingContext)
    step["lr"]
    step.add("out", 1)
    assert set(run.reads) == {"lr"}
    assert "out" not in run
    run.merge(step)
    assert run["out"] == 1


def test_only_contexts_can_be_wrapped() -> None:
    with pytest.raises(TypeError, match="wraps a FrozenContext"):
        LoggingContext({"a": 1})  # type: ignore[arg-type]


def test_pickles_with_its_reads_and_wrapped_context() -> None:
    inner = FrozenContext({"a": 1, "b": [2]})
    ctx = LoggingContext(inner)
    ctx["a"]
    ctx.record("m", 1.0)
    copy = pickle.loads(pickle.dumps(ctx))
    assert dict(copy.reads) == {"a": 1}
    assert copy.as_dict() == {"a": 1, "b": [2]}
    assert dict(copy.reads) == {"a": 1}
    copy.add("c", 3)
    assert copy.inner["c"] == 3  # still a proxy of its (copied) inner context
    assert copy.metrics["m"] == (1.0,)
