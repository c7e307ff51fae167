"""RunRecord: JSON and back without loss; provenance filled."""

from __future__ import annotations

import enum
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_ops import RECORD_FORMAT, Capture, ErrorInfo, RunRecord, operation
from assay_ops._provenance import git_commit
from hypothesis import given, settings
from hypothesis import strategies as st

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # nan and infinities included
    st.text(max_size=6),
    st.binary(max_size=6),
    st.complex_numbers(allow_nan=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(st.integers(), inner, max_size=3),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=10,
)


def make_record(**changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "operation": "op",
        "ref": "m:op",
        "code_hash": "abc",
        "params": {"lr": 0.1},
        "seed": {"root_seed": 0, "params_digest": "0" * 64, "replicate": 0, "path": []},
        "status": "success",
        "metrics": {},
        "metric_tags": {},
        "artifacts": [],
        "logs": [],
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:00:01+00:00",
        "duration": 1.0,
        "error": None,
        "provenance": {"python": "3.11"},
        "runtime": {"backend": "inline"},
    }
    fields.update(changes)
    return RunRecord(**fields)


def same(a: Any, b: Any) -> bool:
    """Equality that also checks types, treats NaN as NaN and compares arrays by content."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, np.ndarray):
        return bool(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=5), values, max_size=4))
def test_params_of_any_supported_type_round_trip_exactly(params: dict[str, Any]) -> None:
    record = make_record(params=params)
    back = RunRecord.from_json(record.to_json())
    assert same(back.params, params)


NUMPY_VALUES = [
    np.float32(0.1),
    np.int64(-3),
    np.uint8(200),
    np.bool_(True),
    np.float64("nan"),
    np.arange(6, dtype=">i2").reshape(2, 3),
    np.array([1.5, np.inf], dtype=np.float32),
    np.array(["a", "bc"]),
    np.zeros((0, 3)),
]


@pytest.mark.parametrize("value", NUMPY_VALUES, ids=lambda v: f"{type(v).__name__}-{v.dtype}")
def test_numpy_values_keep_type_dtype_and_shape(value: Any, tmp_path: Path) -> None:
    record = make_record(metrics={"m": [value]}, params={"p": value})
    inline = RunRecord.from_json(record.to_json())
    assert same(inline.metrics["m"][0], value)
    assert same(inline.params["p"], value)
    saved = RunRecord.load(record.save(tmp_path).parent)
    assert same(saved.metrics["m"][0], value)


def test_arrays_are_referenced_by_file_when_saved(tmp_path: Path) -> None:
    array = np.random.default_rng(0).random((100, 10))
    record = make_record(metrics={"weights": [array]})
    path = record.save(tmp_path / "run")
    text = path.read_text()
    assert '"file":' in text
    assert len(text) < array.nbytes  # the array is beside the record, not inside it
    (npy,) = (tmp_path / "run" / "arrays").iterdir()
    assert np.array_equal(np.load(npy), array)
    assert same(RunRecord.load(tmp_path / "run").metrics["weights"][0], array)
    with pytest.raises(ValueError, match="pass array_dir"):
        RunRecord.from_json(text)


def test_a_real_run_round_trips_and_saves_atomically(tmp_path: Path) -> None:
    @operation
    def op(params: dict[str, Any], capture: Capture) -> None:
        capture.metric("loss", np.float32(0.5), step=1, tags={"split": "val"})
        capture.metric("curve", np.linspace(0, 1, 5))
        capture.artifact("table", {"a": [1, 2]}, metadata={"rows": 2})
        capture.log("hello", level="warning")
        raise RuntimeError("late failure")

    record = op.run(params={"n": np.int32(3), "dims": (1, 2)})
    assert record.status == "failed"
    path = record.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    back = RunRecord.load(tmp_path)
    for field in ("run_id", "status", "error", "provenance", "logs", "artifacts", "metric_tags"):
        assert getattr(back, field) == getattr(record, field)
    assert same(back.params, record.params)
    assert same(back.metrics, record.metrics)
    assert json.loads(path.read_text())["format"] == RECORD_FORMAT


def test_unsupported_values_and_bad_documents_are_refused() -> None:
    with pytest.raises(TypeError, match=r"params\['f'\].*object"):
        make_record(params={"f": object()}).to_json()
    with pytest.raises(ValueError, match="format='other'"):
        RunRecord.from_dict({"format": "other"})
    data = make_record().to_dict()
    del data["status"]
    with pytest.raises(ValueError, match=r"missing the field\(s\) \['status'\]"):
        RunRecord.from_dict(data)
    with pytest.raises(ValueError, match="status='done'"):
        make_record(status="done")
    with pytest.raises(ValueError, match="expected a JSON object"):
        RunRecord.from_json("[1]")


def test_metric_reads_the_last_value_and_names_the_known_ones() -> None:
    record = make_record(metrics={"loss": [0.9, 0.4]})
    assert record.metric("loss") == 0.4
    with pytest.raises(KeyError, match=r"'acc' was not recorded.*\['loss'\]"):
        record.metric("acc")
    assert make_record(error=ErrorInfo("builtins.ValueError", "m", "tb")).replicate == 0


def test_provenance_fields_are_filled() -> None:
    @operation
    def op() -> None: ...

    provenance = op.run().provenance
    for key in ("python", "implementation", "platform", "hostname", "executable"):
        assert isinstance(provenance[key], str)
        assert provenance[key]
    assert provenance["packages"]["numpy"] == np.__version__
    assert provenance["packages"]["assay-ops"]
    assert "git_commit" in provenance


def fake_repository(root: Path, *, packed: bool = False, detached: bool = False) -> str:
    sha = "0123456789abcdef0123456789abcdef01234567"
    git = root / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    if detached:
        (git / "HEAD").write_text(sha + "\n")
    else:
        (git / "HEAD").write_text("ref: refs/heads/main\n")
        if packed:
            (git / "packed-refs").write_text(f"# pack-refs\n{sha} refs/heads/main\n")
        else:
            (git / "refs" / "heads" / "main").write_text(sha + "\n")
    return sha


@pytest.mark.parametrize(("packed", "detached"), [(False, False), (True, False), (False, True)])
def test_git_commit_of_the_operations_repository(
    tmp_path: Path, packed: bool, detached: bool
) -> None:
    sha = fake_repository(tmp_path, packed=packed, detached=detached)
    source = tmp_path / "pkg" / "ops.py"
    source.parent.mkdir()
    source.write_text("")
    assert git_commit(source) == sha


def test_git_commit_follows_a_new_commit_and_is_none_outside_a_repository(tmp_path: Path) -> None:
    fake_repository(tmp_path / "repo")
    source = tmp_path / "repo" / "ops.py"
    source.write_text("")
    git_commit(source)
    ref = tmp_path / "repo" / ".git" / "refs" / "heads" / "main"
    ref.write_text("f" * 40 + "\n")
    os.utime(ref, ns=(1, 1))  # a new modification time, as a commit gives
    assert git_commit(source) == "f" * 40
    lonely = tmp_path / "alone" / "x.py"
    lonely.parent.mkdir()
    lonely.write_text("")
    if not any((folder / ".git").exists() for folder in lonely.parents):
        assert git_commit(lonely) is None
    assert git_commit("<string>") is None
    assert git_commit(None) is None


def test_an_operation_in_a_repository_records_its_commit(tmp_path: Path, make_module: Any) -> None:
    sha = fake_repository(tmp_path)
    module = make_module(
        "op_in_repo", "from assay_ops import operation\n@operation\ndef op(): pass\n"
    )
    assert module.op.run().provenance["git_commit"] == sha


def test_records_compare_by_content_even_with_arrays_and_nan() -> None:
    record = make_record(metrics={"w": [np.arange(3.0)], "x": [float("nan")]})
    assert RunRecord.from_json(record.to_json()) == record
    assert make_record(metrics={"w": [np.arange(3.0) + 1]}) != record
    assert record != "not a record"


class Mode(enum.Enum):
    FAST = "fast"


class Level(enum.IntEnum):
    HIGH = 2


def test_enum_params_round_trip_and_operations_cannot_change_the_recorded_params() -> None:
    record = make_record(params={"mode": Mode.FAST, "level": Level.HIGH, "raw": bytearray(b"x")})
    back = RunRecord.from_json(record.to_json())
    assert back.params["mode"] is Mode.FAST
    assert back.params["level"] is Level.HIGH
    assert back.params["raw"] == b"x"

    @operation
    def meddles(params: dict[str, Any]) -> None:
        params["lr"] = 99

    assert meddles.run(params={"lr": 0.1}).params == {"lr": 0.1}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=5), values, max_size=4), values)
def test_compact_json_holds_the_same_record_as_indented_json(
    params: dict[str, Any], metric: Any
) -> None:
    record = make_record(params=params, metrics={"m": [metric]}, metric_tags={"m": [{}]})
    compact = record.to_json(indent=None)
    assert "\n" not in compact
    assert list(json.loads(compact)) == list(json.loads(record.to_json()))
    assert json.loads(compact) == json.loads(record.to_json())
    assert same(RunRecord.from_json(compact).metrics["m"][0], metric)


def test_compact_json_follows_a_change_of_provenance() -> None:
    first = make_record(provenance={"python": "3.11", "git_commit": "a" * 40})
    second = make_record(provenance={"python": "3.11", "git_commit": "b" * 40})
    assert json.loads(first.to_json(indent=None))["provenance"]["git_commit"] == "a" * 40
    assert json.loads(second.to_json(indent=None))["provenance"]["git_commit"] == "b" * 40
    assert json.loads(first.to_json(indent=None))["provenance"]["git_commit"] == "a" * 40


def test_plain_dicts_with_dollar_keys_or_non_finite_floats_stay_tagged() -> None:
    params = {"$tuple": [1], "x": [1.0, float("inf")], "y": {"z": float("nan")}}
    data = make_record(params=params).to_dict()
    assert "$dict" in data["params"]  # a key that looks like a tag is not taken for one
    back = RunRecord.from_dict(json.loads(json.dumps(data, allow_nan=False)))
    assert same(back.params, params)


def same_scalar(a: Any, b: Any) -> bool:
    """Same numpy scalar: same type, same dtype (unit included), same value (NaT equals NaT)."""
    if type(a) is not type(b) or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        # by value: a long double's bytes include padding that holds whatever memory held
        return bool(a == b or (np.isnan(a) and np.isnan(b)))
    return np.array(a).tobytes() == np.array(b).tobytes()


# numpy scalars whose .item() is not a plain Python value of the same precision and unit.
ODD_NUMPY_SCALARS = [
    np.datetime64("2020-01-01"),  # .item() is a datetime.date
    np.datetime64("2020-01-01T12:30", "m"),  # a datetime.datetime
    np.datetime64("2020-01-01T00:00:00.123456789"),  # an int of nanoseconds
    np.datetime64("NaT", "D"),  # None
    np.timedelta64(90, "s"),  # a datetime.timedelta
    np.timedelta64(3, "Y"),  # an int: the unit would be lost
    np.longdouble(1) / np.longdouble(3),  # itself: a float would round it
    np.clongdouble(1 + 2j) / 3,
]


@pytest.mark.parametrize("value", ODD_NUMPY_SCALARS, ids=repr)
def test_numpy_dates_durations_and_long_doubles_round_trip(value: Any, tmp_path: Path) -> None:
    record = make_record(metrics={"m": [value]}, params={"p": value})
    inline = RunRecord.from_json(record.to_json())
    assert same_scalar(inline.params["p"], value)
    assert same_scalar(inline.metrics["m"][0], value)
    saved = RunRecord.load(record.save(tmp_path).parent)
    assert same_scalar(saved.params["p"], value)
