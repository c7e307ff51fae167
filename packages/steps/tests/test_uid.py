"""The canonical encoding behind cache uids: equal values agree, different types never collide."""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pydantic
import pytest
from assay_steps._uid import ENCODING_VERSION, encode, uid_of
from hypothesis import given
from hypothesis import strategies as st

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=12,
)


@given(values)
def test_equal_values_have_equal_uids(value: Any) -> None:
    import copy

    assert uid_of(value) == uid_of(copy.deepcopy(value))


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=6))
def test_dict_order_is_irrelevant(data: dict[str, int]) -> None:
    reversed_data = dict(reversed(list(data.items())))
    assert uid_of(data) == uid_of(reversed_data)


@given(st.sets(st.integers(), max_size=8))
def test_set_order_is_irrelevant(items: set[int]) -> None:
    assert uid_of(items) == uid_of(set(sorted(items, reverse=True)))


@given(st.lists(st.integers(), max_size=5))
def test_tuple_and_list_differ(items: list[int]) -> None:
    assert uid_of(items) != uid_of(tuple(items))


@given(st.integers())
def test_int_float_and_bool_differ(number: int) -> None:
    uids = {uid_of(number), uid_of(float(number)), uid_of(str(number))}
    assert len(uids) == 3
    if number in (0, 1):
        assert uid_of(bool(number)) not in uids


@given(values, values)
def test_different_encodings_give_different_uids(a: Any, b: Any) -> None:
    # uids are a hash of the encoding: distinct encodings give distinct uids (no collision
    # is expected at 128 bits), equal encodings give equal uids.
    assert (encode(a) == encode(b)) == (uid_of(a) == uid_of(b))


@given(st.lists(st.text(max_size=3), max_size=4), st.lists(st.text(max_size=3), max_size=4))
def test_nesting_is_unambiguous(a: list[str], b: list[str]) -> None:
    # concatenation artefacts: ["ab"] + [] vs ["a", "b"] must not collide
    if a != b:
        assert uid_of(a) != uid_of(b)


def _retyped(value: Any) -> Any:
    """The same content under another type (int→float, str→bytes, list→tuple, ...)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return str(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, frozenset):
        return set(value)
    return [value]  # None


@given(values)
def test_values_differing_in_type_have_different_uids(value: Any) -> None:
    assert uid_of(value) != uid_of(_retyped(value))
    assert uid_of(value) != uid_of([value])  # wrapping changes the uid too


def test_a_pure_path_differs_from_str_and_from_a_path_on_disk(tmp_path: Path) -> None:
    assert uid_of(PurePosixPath("a/b")) != uid_of("a/b")
    (tmp_path / "a").write_text("a/b")
    assert uid_of(tmp_path / "a") != uid_of(PurePosixPath(tmp_path / "a"))  # content vs name


def test_arrays_are_keyed_by_dtype_shape_and_bytes() -> None:
    a = np.arange(6, dtype=np.int64)
    assert uid_of(a) == uid_of(a.copy())
    assert uid_of(a) != uid_of(a.astype(np.int32))
    assert uid_of(a) != uid_of(a.reshape(2, 3))
    b = a.copy()
    b[3] = 99
    assert uid_of(a) != uid_of(b)
    assert uid_of(a) != uid_of(a.tolist())
    # a non-contiguous view hashes like its contiguous copy
    m = np.arange(12).reshape(3, 4)
    assert uid_of(m[:, 1]) == uid_of(np.ascontiguousarray(m[:, 1]))


def test_numpy_scalars_differ_from_python_numbers() -> None:
    assert uid_of(np.float64(1.0)) != uid_of(1.0)
    assert uid_of(np.float32(1.0)) != uid_of(np.float64(1.0))


def test_nan_has_one_uid() -> None:
    assert uid_of(float("nan")) == uid_of(float("-nan"))


class Color(enum.Enum):
    RED = 1


class Point(pydantic.BaseModel):
    x: int
    y: int = 0


class Other(pydantic.BaseModel):
    x: int
    y: int = 0


def test_pydantic_models_by_class_and_fields() -> None:
    assert uid_of(Point(x=1)) == uid_of(Point(x=1, y=0))
    assert uid_of(Point(x=1)) != uid_of(Point(x=2))
    assert uid_of(Point(x=1)) != uid_of(Other(x=1))
    assert uid_of(Color.RED) != uid_of(1)


@pytest.mark.parametrize(
    "bad", [object(), lambda x: x, np.array([object()]), {"ok": [1, object()]}]
)
def test_unsupported_types_raise_a_clear_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="cannot compute a cache uid"):
        uid_of(bad)


def test_error_names_where_the_bad_value_is() -> None:
    with pytest.raises(TypeError, match=r"value\['ok'\]\[1\]"):
        uid_of({"ok": [1, object()]})


def test_encoding_is_versioned() -> None:
    assert ENCODING_VERSION.startswith(b"assay-uid-")


def test_uid_is_stable_across_releases() -> None:
    # Changing this value means every existing cache is invalidated: bump ENCODING_VERSION.
    import xxhash

    assert uid_of((1, "a")) == xxhash.xxh3_128_hexdigest(ENCODING_VERSION + b"t2:i1:1s1:a")


# Types pydantic writes as JSON that step configurations of exca users hold (exca accepts them).
_EXTRA = [
    datetime.date(2026, 1, 2),
    datetime.datetime(2026, 1, 2, 3, 4, 5, 6),
    datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
    datetime.time(3, 4, 5),
    datetime.timedelta(days=1, seconds=2, microseconds=3),
    decimal.Decimal("0.1"),
    uuid.UUID("12345678123456781234567812345678"),
    complex(1, 2),
]


@pytest.mark.parametrize("value", _EXTRA, ids=lambda v: type(v).__name__)
def test_dates_decimals_uuids_and_complex_numbers_have_uids(value: Any) -> None:
    assert uid_of(value) == uid_of(copy.deepcopy(value))
    assert uid_of(value) != uid_of(str(value))  # typed: never the text it prints as
    others = [uid_of(v) for v in _EXTRA if v is not value]
    assert uid_of(value) not in others


def test_close_dates_and_amounts_have_different_uids() -> None:
    day = datetime.date(2026, 1, 2)
    assert uid_of(day) != uid_of(day + datetime.timedelta(days=1))
    assert uid_of(datetime.datetime(2026, 1, 2)) != uid_of(day)  # a datetime is not its date
    naive = datetime.datetime(2026, 1, 2, 3)
    assert uid_of(naive) != uid_of(naive.replace(tzinfo=datetime.timezone.utc))
    assert uid_of(decimal.Decimal("0.1")) != uid_of(decimal.Decimal("0.2"))
    assert uid_of(decimal.Decimal("0.1")) != uid_of(0.1)
    assert uid_of(complex(1, 2)) != uid_of(complex(2, 1))
    assert uid_of(datetime.timedelta(seconds=1)) != uid_of(datetime.timedelta(microseconds=1))


def test_masked_arrays_are_keyed_by_their_mask_too() -> None:
    data = np.arange(4.0)
    one = np.ma.masked_array(data, mask=[False, True, False, False])
    other = np.ma.masked_array(data, mask=[False, False, True, False])
    assert uid_of(one) == uid_of(np.ma.masked_array(data.copy(), mask=one.mask.copy()))
    assert uid_of(one) != uid_of(other)
    assert uid_of(one) != uid_of(data)  # a masked array is not its data
    assert uid_of(np.ma.masked_array(data)) != uid_of(data)  # nothing masked: still masked
