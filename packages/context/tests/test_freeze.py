"""freeze, thaw and FrozenDict: deep immutability, equality, hashing, pickling."""

from __future__ import annotations

import collections
import datetime
import enum
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from assay_context import FrozenDict, FrozenList, freeze, thaw
from hypothesis import given
from hypothesis import strategies as st

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=15,
)


class Point(NamedTuple):
    x: int
    y: list[int]


class Color(enum.Enum):
    RED = 1


def test_containers_become_immutable_equivalents() -> None:
    frozen = freeze(
        {"l": [1, [2]], "s": {3}, "b": bytearray(b"x"), "d": collections.deque([4]), "t": (5, [6])}
    )
    assert isinstance(frozen, FrozenDict)
    assert frozen == {"l": [1, [2]], "s": frozenset({3}), "b": b"x", "d": [4], "t": (5, [6])}
    assert [type(frozen[k]) for k in "lsbdt"] == [FrozenList, frozenset, bytes, FrozenList, tuple]
    assert type(frozen["l"][1]) is FrozenList
    assert type(frozen["t"][1]) is FrozenList


@pytest.mark.parametrize(
    "value",
    [None, 1, 1.5, "s", b"b", Path("p"), datetime.date(2024, 1, 1), Color.RED, range(3), int],
)
def test_immutable_values_are_returned_as_they_are(value: Any) -> None:
    assert freeze(value) is value


def test_namedtuples_keep_their_type_with_frozen_fields() -> None:
    frozen = freeze(Point(1, [2]))
    assert isinstance(frozen, Point)
    fields: tuple[Any, ...] = tuple(frozen)
    assert fields == (1, [2])
    assert type(frozen.y) is FrozenList
    assert thaw(frozen) == Point(1, [2])
    assert type(thaw(frozen)) is Point


def test_unknown_objects_raise_type_error_naming_them() -> None:
    class Thing:
        pass

    with pytest.raises(TypeError, match=r"cannot freeze .*Thing"):
        freeze({"a": [Thing()]})


def test_frozen_dict_refuses_every_mutation() -> None:
    frozen = FrozenDict({"a": 1})
    with pytest.raises(TypeError):
        frozen["a"] = 2
    with pytest.raises(TypeError):
        del frozen["a"]
    with pytest.raises(TypeError):
        frozen.update({"a": 2})
    with pytest.raises(TypeError):
        frozen.pop("a")
    with pytest.raises(TypeError):
        frozen.extra = 1  # type: ignore[attr-defined]
    assert frozen == {"a": 1}  # every mutation is tested in test_plain_containers.py


def test_frozen_dict_equality_hash_union_and_repr() -> None:
    a: FrozenDict[str, Any] = FrozenDict({"x": [1]})
    assert a == {"x": [1]}
    assert a == FrozenDict({"x": [1]})
    assert a != {"x": (1,)}
    assert hash(a) == hash(FrozenDict({"x": [1]}))
    assert {a: "usable as a key"}[FrozenDict({"x": [1]})] == "usable as a key"
    assert (a | {"y": [2]}) == {"x": [1], "y": [2]}
    assert repr(a) == "FrozenDict({'x': FrozenList([1])})"
    assert FrozenDict([("k", 1)]) == {"k": 1}
    assert FrozenDict() == {}


@given(json_like)
def test_thaw_inverts_freeze_for_json_like_values(value: Any) -> None:
    assert thaw(freeze(value)) == value


@given(json_like)
def test_freeze_is_idempotent_and_hashable_for_json_like_values(value: Any) -> None:
    frozen = freeze(value)
    assert freeze(frozen) == frozen
    hash(frozen)


@given(json_like)
def test_frozen_values_pickle_to_equal_frozen_values(value: Any) -> None:
    frozen = freeze(value)
    copy = pickle.loads(pickle.dumps(frozen))
    assert copy == frozen
    assert type(copy) is type(frozen)


def test_arrays_stay_read_only_after_pickling_inside_frozen_dicts() -> None:
    np = pytest.importorskip("numpy")
    frozen = freeze({"w": np.arange(3), "nested": {"v": [np.ones(2)]}})
    copy = pickle.loads(pickle.dumps(frozen))
    assert not copy["w"].flags.writeable
    assert not copy["nested"]["v"][0].flags.writeable
    assert copy["w"].tolist() == [0, 1, 2]


def test_thaw_gives_writable_copies_of_arrays() -> None:
    np = pytest.importorskip("numpy")
    frozen = freeze(np.zeros(2))
    thawed = thaw(frozen)
    thawed[0] = 1.0
    assert frozen[0] == 0.0


def test_numpy_is_not_needed_to_import_the_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import assay_context; "
        "assay_context.FrozenContext({'a': [1]}).record('m', 1.0); "
        "print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
