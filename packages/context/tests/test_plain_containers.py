"""Frozen values behave as the plain containers they came from, except that they never change.

A stored dict reads back as a `FrozenDict` (a ``dict``), a stored list as a `FrozenList` (a
``list``): they compare equal to the originals and serialise with ``json``, yet every way of
changing them in place is refused, so what one reader sees is what every later reader sees.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from assay_context import FrozenContext, FrozenDict, FrozenList, freeze, thaw
from hypothesis import given
from hypothesis import strategies as st

CONFIG: dict[str, Any] = {
    "x": [1, 2],
    "opt": {"lr": 0.1, "betas": [0.9, 0.999], "name": "adam"},
    "grid": [[1, 2], [3, {"deep": [4]}]],
    "pair": (1, [2]),
    "empty": {"list": [], "dict": {}},
    "flag": True,
    "none": None,
}

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=15,
)


# ------------------------------------------------------------------ equality and types


def test_a_stored_dict_with_a_list_equals_the_plain_dict() -> None:
    ctx = FrozenContext({"cfg": {"x": [1, 2]}})
    assert ctx["cfg"] == {"x": [1, 2]}
    assert {"x": [1, 2]} == ctx["cfg"]  # noqa: SIM300 - the plain dict on the left on purpose
    assert not (ctx["cfg"] != {"x": [1, 2]})  # noqa: SIM202 - != is checked, not ==
    assert ctx["cfg"]["x"] == [1, 2]
    assert [1, 2] == ctx["cfg"]["x"]  # noqa: SIM300
    assert ctx == {"cfg": {"x": [1, 2]}}
    assert ctx.as_dict() == {"cfg": {"x": [1, 2]}}


def test_frozen_containers_are_dicts_and_lists_and_tuples_stay_tuples() -> None:
    ctx = FrozenContext({"cfg": CONFIG})
    cfg = ctx["cfg"]
    assert isinstance(cfg, dict)
    assert type(cfg) is FrozenDict
    assert isinstance(cfg["x"], list)
    assert type(cfg["x"]) is FrozenList
    assert type(cfg["grid"][1][1]) is FrozenDict
    assert type(cfg["pair"]) is tuple  # a tuple is immutable already: its items are frozen
    assert type(cfg["pair"][1]) is FrozenList
    assert cfg == CONFIG
    assert ctx.as_dict() == {"cfg": CONFIG}


def test_a_frozen_list_does_not_equal_a_tuple_as_a_list_does_not() -> None:
    frozen = freeze([1, 2])
    assert frozen == [1, 2]
    assert frozen != (1, 2)
    assert freeze((1, 2)) == (1, 2)
    assert freeze((1, 2)) != [1, 2]
    assert freeze({"a": [1]}) != {"a": (1,)}


@given(json_like)
def test_frozen_json_like_values_equal_the_originals(value: Any) -> None:
    frozen = freeze(value)
    assert frozen == value
    assert value == frozen
    assert FrozenContext({"v": value})["v"] == value


# ------------------------------------------------------------------ json


def _encoders(value: Any) -> list[str]:
    """Serialise with the C encoder (compact) and the pure Python one (indent=, a file)."""
    out = io.StringIO()
    json.dump(value, out, indent=2)
    return [
        json.dumps(value),
        json.dumps(value, sort_keys=True),
        json.dumps(value, indent=2),
        json.dumps(value, indent="\t", sort_keys=True, separators=(",", ": ")),
        out.getvalue(),
    ]


def test_as_dict_serialises_with_json_like_the_plain_dict() -> None:
    ctx = FrozenContext({"cfg": CONFIG, "lr": 0.01, "name": "run"})
    plain = {"cfg": CONFIG, "lr": 0.01, "name": "run"}
    assert _encoders(ctx.as_dict()) == _encoders(plain)
    assert json.loads(json.dumps(ctx.as_dict())) == json.loads(json.dumps(plain))
    assert json.dumps(ctx.as_dict(), indent=2).count("\n") > 10  # really indented, nested
    assert _encoders(ctx["cfg"]) == _encoders(CONFIG)
    assert _encoders(ctx["cfg"]["grid"]) == _encoders(CONFIG["grid"])
    assert json.dumps(ctx["cfg"]["empty"]) == '{"list": [], "dict": {}}'


@given(json_like)
def test_any_json_like_value_serialises_as_its_original(value: Any) -> None:
    frozen = FrozenContext({"v": value}).as_dict()
    assert _encoders(frozen) == _encoders({"v": value})


def test_metrics_and_tags_serialise_with_json() -> None:
    ctx = FrozenContext({})
    ctx.record("loss", 0.5, tags={"epoch": 1, "sizes": [1, 2], "cfg": {"a": [3]}})
    ctx.record("loss", 0.25)
    assert json.dumps(ctx.metrics.as_dict()) == '{"loss": [0.5, 0.25]}'
    assert json.dumps(ctx.metrics.get_tags("loss"), indent=1) == json.dumps(
        [{"epoch": 1, "sizes": [1, 2], "cfg": {"a": [3]}}, {}], indent=1
    )


# ------------------------------------------------------------------ every mutation is refused

LIST_MUTATIONS: dict[str, Callable[[Any], object]] = {
    "item assignment": lambda v: v.__setitem__(0, 9),
    "slice assignment": lambda v: v.__setitem__(slice(0, 1), [9]),
    "item deletion": lambda v: v.__delitem__(0),
    "slice deletion": lambda v: v.__delitem__(slice(None)),
    "append": lambda v: v.append(9),
    "extend": lambda v: v.extend([9]),
    "insert": lambda v: v.insert(0, 9),
    "pop": lambda v: v.pop(),
    "pop(0)": lambda v: v.pop(0),
    "remove": lambda v: v.remove(1),
    "clear": lambda v: v.clear(),
    "sort": lambda v: v.sort(),
    "sort(reverse=True)": lambda v: v.sort(reverse=True),
    "reverse": lambda v: v.reverse(),
    "+=": lambda v: v.__iadd__([9]),
    "*=": lambda v: v.__imul__(2),
    "*= 0": lambda v: v.__imul__(0),
    "new attribute": lambda v: setattr(v, "extra", 1),
    "__class__ assignment": lambda v: setattr(v, "__class__", _MutableList),
    "attribute deletion": lambda v: delattr(v, "__class__"),
}

DICT_MUTATIONS: dict[str, Callable[[Any], object]] = {
    "item assignment": lambda v: v.__setitem__("a", 9),
    "new item": lambda v: v.__setitem__("new", 9),
    "item deletion": lambda v: v.__delitem__("a"),
    "clear": lambda v: v.clear(),
    "pop": lambda v: v.pop("a"),
    "pop with default": lambda v: v.pop("missing", None),
    "popitem": lambda v: v.popitem(),
    "setdefault": lambda v: v.setdefault("new", 9),
    "setdefault of a present key": lambda v: v.setdefault("a"),
    "update": lambda v: v.update({"a": 9}),
    "update with keywords": lambda v: v.update(a=9),
    "update with nothing": lambda v: v.update(),
    "|=": lambda v: v.__ior__({"a": 9}),
    "new attribute": lambda v: setattr(v, "extra", 1),
    "cached hash": lambda v: setattr(v, "_hash", 0),
    "__class__ assignment": lambda v: setattr(v, "__class__", _MutableDict),
    "attribute deletion": lambda v: delattr(v, "_hash"),
}


class _MutableList(list):  # type: ignore[type-arg]
    __slots__ = ()


class _MutableDict(dict):  # type: ignore[type-arg]
    __slots__ = ("_hash",)


@pytest.mark.parametrize("mutation", LIST_MUTATIONS.values(), ids=LIST_MUTATIONS.keys())
def test_a_frozen_list_refuses_every_mutation(mutation: Callable[[Any], object]) -> None:
    ctx = FrozenContext({"xs": [1, 2, [3]], "cfg": {"xs": [1, 2]}})
    for value in (ctx["xs"], ctx["cfg"]["xs"], freeze([1, 2])):
        before = list(value)
        with pytest.raises(TypeError, match="read-only"):
            mutation(value)
        assert list(value) == before
        assert type(value) is FrozenList
    assert ctx["xs"] == [1, 2, [3]]
    assert ctx["cfg"] == {"xs": [1, 2]}


@pytest.mark.parametrize("mutation", DICT_MUTATIONS.values(), ids=DICT_MUTATIONS.keys())
def test_a_frozen_dict_refuses_every_mutation(mutation: Callable[[Any], object]) -> None:
    ctx = FrozenContext({"cfg": {"a": 1, "b": [2]}, "nested": {"cfg": {"a": 1}}})
    for value in (ctx["cfg"], ctx["nested"]["cfg"], ctx.as_dict(), freeze({"a": 1})):
        before = dict(value)
        with pytest.raises(TypeError, match="read-only"):
            mutation(value)
        assert dict(value) == before
        assert type(value) is FrozenDict
    assert ctx["cfg"] == {"a": 1, "b": [2]}
    assert ctx["nested"] == {"cfg": {"a": 1}}


def test_augmented_assignment_on_a_read_value_is_refused() -> None:
    ctx = FrozenContext({"xs": [1], "cfg": {"a": 1}})
    xs = ctx["xs"]
    with pytest.raises(TypeError, match="read-only"):
        xs += [2]
    with pytest.raises(TypeError, match="read-only"):
        xs *= 2
    cfg = ctx["cfg"]
    with pytest.raises(TypeError, match="read-only"):
        cfg |= {"b": 2}
    assert ctx["xs"] == [1]
    assert ctx["cfg"] == {"a": 1}


@pytest.mark.xfail(strict=True, reason="heapq writes into any list's storage directly")
def test_heapq_cannot_change_a_frozen_list() -> None:
    import heapq

    xs = freeze([3, 1, 2])
    with pytest.raises(TypeError):
        heapq.heappush(xs, 0)  # documented: thaw() a value before handing it to heapq


def test_calling_init_again_changes_nothing() -> None:
    xs, cfg = freeze([1, 2]), freeze({"a": 1})
    xs.__init__([9])
    cfg.__init__({"a": 9, "b": 2})
    assert xs == [1, 2]
    assert cfg == {"a": 1}


def test_mutation_errors_name_the_operation_the_value_and_the_way_out() -> None:
    with pytest.raises(TypeError) as error:
        freeze({"layers": [64]})["layers"].append(128)
    message = str(error.value)
    assert "append" in message
    assert "FrozenList([64])" in message
    assert "thaw()" in message
    with pytest.raises(TypeError, match=r"'lr'.*FrozenDict\(\{'lr': 0\.1\}\)"):
        freeze({"lr": 0.1})["lr"] = 1.0


def test_operations_that_build_new_containers_give_plain_mutable_ones() -> None:
    xs, cfg = freeze([3, 1, 2]), freeze({"a": 1})
    added = xs + [4]  # noqa: RUF005 - list.__add__ is what is tested
    for plain in (added, xs[:], xs[0:2], xs * 2, xs.copy(), list(xs), sorted(xs)):
        assert type(plain) is list
        plain.append(0)
    assert [*reversed(xs)] == [2, 1, 3]
    assert type(cfg.copy()) is dict
    assert type({**cfg}) is dict
    assert type(dict(cfg)) is dict
    merged = cfg | {"b": [2]}
    assert type(merged) is FrozenDict
    assert type(merged["b"]) is FrozenList
    assert merged == {"a": 1, "b": [2]}
    assert cfg == {"a": 1}
    assert xs == [3, 1, 2]
    assert type(FrozenDict.fromkeys(["a", "b"], [0])) is FrozenDict
    assert FrozenDict.fromkeys(["a", "b"], [0]) == {"a": [0], "b": [0]}


def test_direct_constructors_freeze_deeply() -> None:
    xs = FrozenList([1, [2], {"a": [3]}])
    assert type(xs[1]) is FrozenList
    assert type(xs[2]["a"]) is FrozenList
    assert FrozenList() == []
    assert FrozenDict({"a": [1]})["a"] == [1]
    assert type(FrozenDict([("a", [1])])["a"]) is FrozenList


# ------------------------------------------------------------------ pickling, copies, hashing


def test_pickling_keeps_the_types_and_the_refusals() -> None:
    np = pytest.importorskip("numpy")
    value = freeze({"xs": [1, [2]], "t": (1, [2]), "w": [np.arange(2)]})
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(value, protocol=protocol))
        assert type(back) is FrozenDict
        assert type(back["xs"]) is FrozenList
        assert type(back["xs"][1]) is FrozenList
        assert type(back["t"][1]) is FrozenList
        assert back["xs"] == [1, [2]]
        assert not back["w"][0].flags.writeable
        with pytest.raises(TypeError, match="read-only"):
            back["xs"].append(3)
        with pytest.raises(TypeError, match="read-only"):
            back["new"] = 1


def test_copy_returns_the_same_value_and_deepcopy_an_equal_frozen_one() -> None:
    value = freeze({"xs": [1, [2]], "cfg": {"a": [1]}})
    assert copy.copy(value) is value
    assert copy.copy(value["xs"]) is value["xs"]
    deep = copy.deepcopy(value)
    assert deep == value
    assert type(deep) is FrozenDict
    assert type(deep["xs"][1]) is FrozenList
    with pytest.raises(TypeError, match="read-only"):
        deep["xs"].append(3)


def test_deepcopy_of_arrays_inside_keeps_them_read_only() -> None:
    np = pytest.importorskip("numpy")
    value = freeze({"w": [np.zeros(2)]})
    deep = copy.deepcopy(value)
    assert not deep["w"][0].flags.writeable
    assert deep["w"][0] is not value["w"][0]


def test_frozen_values_hash_by_content() -> None:
    a = freeze({"xs": [1, 2], "cfg": {"b": [3]}})
    b = freeze({"xs": [1, 2], "cfg": {"b": [3]}})
    assert hash(a) == hash(b)
    assert hash(freeze([1, [2]])) == hash(FrozenList([1, [2]]))
    assert {a: "found"}[b] == "found"
    assert freeze([1, 2]) in {freeze([1, 2])}
    frozen_set_and_bytes = freeze({"s": {1, 2}, "b": bytearray(b"x")})
    assert hash(frozen_set_and_bytes) == hash(freeze({"s": {2, 1}, "b": b"x"}))


def test_values_holding_arrays_are_unhashable_as_tuples_holding_them_are() -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(TypeError, match="unhashable"):
        hash(freeze([np.zeros(2)]))
    with pytest.raises(TypeError, match="unhashable"):
        hash((np.zeros(2),))


# ------------------------------------------------------------------ thaw


@given(json_like)
def test_thaw_gives_back_the_original_with_its_types(value: Any) -> None:
    thawed = thaw(freeze(value))
    assert thawed == value
    assert _shape(thawed) == _shape(value)


def test_thaw_keeps_tuples_and_gives_plain_lists_and_dicts() -> None:
    thawed = thaw(freeze({"t": (1, [2]), "xs": [(3,)], "d": {"a": []}}))
    assert thawed == {"t": (1, [2]), "xs": [(3,)], "d": {"a": []}}
    assert type(thawed) is dict
    assert type(thawed["t"]) is tuple
    assert type(thawed["t"][1]) is list
    assert type(thawed["xs"]) is list
    assert type(thawed["xs"][0]) is tuple
    thawed["xs"].append(4)
    thawed["d"]["a"].append(5)


def _shape(value: Any) -> Any:
    """The exact container types of a value, leaves dropped."""
    if isinstance(value, dict):
        return (type(value), {k: _shape(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return (type(value), [_shape(v) for v in value])
    return None


# ------------------------------------------------------------------ get_tags


def test_get_tags_returns_plain_dict_copies() -> None:
    ctx = FrozenContext({})
    ctx.record("loss", 0.5, tags={"epoch": 1, "sizes": [1, 2]})
    ctx.record("loss", 0.25)
    first, second = ctx.metrics.get_tags("loss")
    assert type(first) is dict
    assert type(second) is dict
    assert first == {"epoch": 1, "sizes": [1, 2]}
    first["epoch"] = 99
    first["new"] = True
    del first["sizes"]
    second["added"] = 1
    assert ctx.metrics.get_tags("loss") == ({"epoch": 1, "sizes": [1, 2]}, {})
    assert ctx.metrics.get_tags("loss")[0] is not ctx.metrics.get_tags("loss")[0]
