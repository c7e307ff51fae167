"""An operation's returned mapping is recorded as metrics; any other value but None is an error."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from assay_ops import Capture, RunRecord, operation
from hypothesis import given
from hypothesis import strategies as st

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8})?", fullmatch=True)
VALUES = st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=10)


def returning(value: Any) -> Any:
    """An operation that captures ``loss`` then returns ``value``."""

    @operation(name="train")
    def train(capture: Capture) -> Any:
        capture.metric("loss", 0.5)
        return value

    return train


def test_a_returned_mapping_is_recorded_as_metrics() -> None:
    record = returning({"accuracy": 0.9, "epochs": 3}).run()
    assert record.status == "success"
    assert record.metrics == {"loss": [0.5], "accuracy": [0.9], "epochs": [3]}
    assert record.metric("accuracy") == 0.9
    assert RunRecord.from_json(record.to_json()) == record


@given(returned=st.dictionaries(NAMES, VALUES, max_size=5))
def test_every_returned_value_is_the_last_value_of_its_metric(returned: dict[str, Any]) -> None:
    record = returning(returned).run()
    assert record.status == "success"
    for name, value in returned.items():
        assert record.metric(name) == value
        if name != "loss":
            assert record.metrics[name] == [value]
    assert set(record.metrics) == {"loss", *returned}


def test_a_metric_captured_and_returned_gets_the_returned_value_appended_last() -> None:
    @operation
    def train(capture: Capture) -> dict[str, float]:
        capture.metric("accuracy", 0.5, step=1)
        capture.metric("accuracy", 0.7, step=2)
        return {"accuracy": 0.9}

    record = train.run()
    assert record.metrics == {"accuracy": [0.5, 0.7, 0.9]}
    assert record.metric_tags == {"accuracy": [{"step": 1}, {"step": 2}, {}]}
    assert record.metric("accuracy") == 0.9


def test_numpy_values_and_mappings_other_than_dict_are_accepted() -> None:
    from types import MappingProxyType

    record = returning(MappingProxyType({"acc": np.float32(0.25), "n": np.int64(7)})).run()
    assert record.status == "success"
    assert record.metric("acc") == np.float32(0.25)
    assert record.metric("n") == 7


def test_returning_none_records_nothing_more() -> None:
    record = returning(None).run()
    assert record.status == "success"
    assert record.metrics == {"loss": [0.5]}


@pytest.mark.parametrize(
    ("returned", "kind"),
    [
        (0.9, "float"),
        ([0.9], "list"),
        ("done", "str"),
        ((1, 2), "tuple"),
        (np.arange(2), "ndarray"),
    ],
)
def test_another_returned_value_fails_the_run_naming_operation_and_type(
    returned: Any, kind: str
) -> None:
    record = returning(returned).run()
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.type == "builtins.TypeError"
    message = record.error.message
    assert "operation 'train'" in message
    assert f"returned a {kind}" in message
    assert "expected a mapping of metric names to values" in message
    assert "or None" in message
    assert record.metrics == {"loss": [0.5]}  # what it captured is kept


@pytest.mark.parametrize(
    ("returned", "error", "words"),
    [
        ({"bad name": 1}, "builtins.ValueError", "'bad name'"),
        ({3: 1.0}, "builtins.TypeError", "metric name 3"),
        ({"nested": {"a": 1}}, "builtins.TypeError", "metric 'nested'"),
        ({"empty": None}, "builtins.TypeError", "metric 'empty'"),
    ],
)
def test_a_returned_mapping_is_validated_as_capture_metric_does(
    returned: dict[Any, Any], error: str, words: str
) -> None:
    record = returning({"accuracy": 0.9, **returned}).run()
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.type == error
    assert "operation 'train' returned" in record.error.message
    assert words in record.error.message
    # all or nothing: no returned value is recorded when one of them is refused
    assert record.metrics == {"loss": [0.5]}


def test_a_returned_nan_is_kept() -> None:
    record = returning({"score": float("nan")}).run()
    assert math.isnan(record.metric("score"))
