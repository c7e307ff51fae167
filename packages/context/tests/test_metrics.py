"""FrozenMetrics: append order, tags kept, validation of names and values."""

from __future__ import annotations

import fractions
from typing import Any

import pytest
from assay_context import FrozenMetrics
from hypothesis import given
from hypothesis import strategies as st

numbers = st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
tags = st.none() | st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5))


def test_add_appends_in_recording_order() -> None:
    metrics = FrozenMetrics()
    metrics.add("loss", 0.9)
    metrics.add("acc", 0.1)
    metrics.add("loss", 0.5)
    assert metrics.as_dict() == {"loss": (0.9, 0.5), "acc": (0.1,)}
    assert list(metrics.as_dict()) == ["loss", "acc"]
    assert metrics["loss"] == (0.9, 0.5)


@given(st.lists(st.tuples(st.sampled_from(["a", "b.c", "d-1"]), numbers, tags), max_size=20))
def test_values_and_tags_are_returned_as_recorded(rows: list[tuple[str, Any, Any]]) -> None:
    metrics = FrozenMetrics()
    for name, value, tag in rows:
        metrics.add(name, value, tags=tag)
    for name in {row[0] for row in rows}:
        mine = [row for row in rows if row[0] == name]
        assert metrics.as_dict()[name] == tuple(value for _, value, _ in mine)
        assert metrics.get_tags(name) == tuple(tag or {} for _, _, tag in mine)
    assert len(metrics) == len({row[0] for row in rows})


def test_tags_are_kept_and_returned_by_get_tags() -> None:
    metrics = FrozenMetrics()
    metrics.add("loss", 1.0, tags={"epoch": 1, "split": "train"})
    metrics.add("loss", 2.0)
    assert metrics.get_tags("loss") == ({"epoch": 1, "split": "train"}, {})


def test_recorded_tags_cannot_be_changed_by_the_caller_or_a_reader() -> None:
    metrics = FrozenMetrics()
    mine = {"epochs": [1, 2]}
    metrics.add("loss", 1.0, tags=mine)
    mine["epochs"].append(3)
    mine["new"] = []
    read = metrics.get_tags("loss")[0]
    read["epochs"] = ()  # a copy: changing it changes nothing recorded
    with pytest.raises(TypeError):
        metrics.get_tags("loss")[0]["epochs"].append(3)  # the values inside are frozen
    assert metrics.get_tags("loss") == ({"epochs": [1, 2]},)


def test_as_dict_is_read_only_and_a_snapshot() -> None:
    metrics = FrozenMetrics()
    metrics.add("loss", 1.0)
    snapshot = metrics.as_dict()
    with pytest.raises(TypeError):
        snapshot["loss"] = ()  # type: ignore[index]
    metrics.add("loss", 2.0)
    assert snapshot["loss"] == (1.0,)


def test_unknown_metric_reads_empty_without_being_created() -> None:
    metrics = FrozenMetrics()
    assert metrics["nothing"] == ()
    assert metrics.get_tags("nothing") == ()
    assert "nothing" not in metrics
    assert metrics.as_dict() == {}


@pytest.mark.parametrize("name", ["", " ", "1st", "a b", "a/b", "a..b", "a.", "-a", "x\n"])
def test_invalid_metric_names_raise_value_error_naming_them(name: str) -> None:
    metrics = FrozenMetrics()
    with pytest.raises(ValueError, match=r"metric name .*identifier-like"):
        metrics.add(name, 1.0)
    assert len(metrics) == 0


@pytest.mark.parametrize("name", ["loss", "val.loss", "top-1", "_x", "a1_b2", "précision"])
def test_identifier_like_names_are_accepted(name: str) -> None:
    metrics = FrozenMetrics()
    metrics.add(name, 1)
    assert metrics[name] == (1,)


def test_non_string_names_raise_type_error() -> None:
    with pytest.raises(TypeError, match=r"metric name 3 .*expected a str"):
        FrozenMetrics().add(3, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"metric name \['a'\] .*expected a str"):
        FrozenMetrics().add(["a"], 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [1, 1.5, True, complex(1, 2), fractions.Fraction(1, 3), "text", float("nan")]
)
def test_numbers_and_strings_are_accepted(value: Any) -> None:
    metrics = FrozenMetrics()
    metrics.add("m", value)
    assert metrics["m"][0] is value


@pytest.mark.parametrize("value", [None, [1.0], {"a": 1}, b"bytes", object(), (1, 2)])
def test_other_values_raise_type_error_naming_metric_and_value(value: Any) -> None:
    metrics = FrozenMetrics()
    with pytest.raises(TypeError, match=r"metric 'm': value .* expected a number"):
        metrics.add("m", value)
    assert "m" not in metrics


def test_numpy_scalars_and_arrays_are_accepted_arrays_read_only() -> None:
    np = pytest.importorskip("numpy")
    metrics = FrozenMetrics()
    array = np.array([0.1, 0.2])
    metrics.add("m", np.float32(0.5))
    metrics.add("m", np.int64(3))
    metrics.add("m", np.bool_(True))
    metrics.add("m", array)
    array[0] = 9.0
    stored = metrics["m"][3]
    assert stored[0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="read-only"):
        stored[0] = 1.0
    with pytest.raises(TypeError, match="metric 'm'"):
        metrics.add("m", np.array([object()], dtype=object))


@pytest.mark.parametrize("bad", [["epoch"], "epoch", {1: "a"}, {"a": object()}])
def test_bad_tags_raise_type_error_naming_the_metric(bad: Any) -> None:
    with pytest.raises(TypeError, match="metric 'loss'"):
        FrozenMetrics().add("loss", 1.0, tags=bad)


def test_a_rejected_value_records_nothing() -> None:
    metrics = FrozenMetrics()
    metrics.add("m", 1)
    with pytest.raises(TypeError):
        metrics.add("m", 2, tags={"bad": object()})
    assert metrics["m"] == (1,)
    assert metrics.get_tags("m") == ({},)


def test_extend_appends_another_record() -> None:
    parent, worker = FrozenMetrics(), FrozenMetrics()
    parent.add("loss", 1.0)
    worker.add("loss", 0.5, tags={"worker": 1})
    worker.add("acc", 0.9)
    parent.extend(worker)
    assert parent.as_dict() == {"loss": (1.0, 0.5), "acc": (0.9,)}
    assert parent.get_tags("loss") == ({}, {"worker": 1})


def test_equality_compares_values_and_tags() -> None:
    a, b = FrozenMetrics(), FrozenMetrics()
    a.add("m", 1, tags={"t": 1})
    b.add("m", 1)
    assert a != b
    c = FrozenMetrics()
    c.add("m", 1, tags={"t": 1})
    assert a == c
    assert list(a) == ["m"]
