"""FrozenContext: the set-once contract, the Mapping protocol, deep freezing, child and merge."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from assay_context import (
    ContextMutationError,
    FrozenContext,
    FrozenDict,
    FrozenList,
    FrozenMetrics,
)
from hypothesis import given
from hypothesis import strategies as st

keys = st.text(min_size=1, max_size=8)
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=12,
)


class Box:
    """An object of unknown mutability: the context cannot freeze it."""

    def __init__(self, items: list[int]) -> None:
        self.items = items


# ---------------------------------------------------------------- the contract


def test_initial_keys_are_readable_by_item_and_get() -> None:
    ctx = FrozenContext({"lr": 0.1, "name": "run"})
    assert ctx["lr"] == 0.1
    assert ctx.get("name") == "run"
    assert ctx.get("missing") is None
    assert ctx.get("missing", 5) == 5


def test_missing_key_raises_key_error_naming_it() -> None:
    ctx = FrozenContext({})
    with pytest.raises(KeyError, match="absent"):
        ctx["absent"]


def test_add_and_setitem_add_new_keys() -> None:
    ctx = FrozenContext({})
    ctx.add("a", 1)
    ctx["b"] = 2
    assert (ctx["a"], ctx["b"]) == (1, 2)


@pytest.mark.parametrize("how", ["add", "setitem"])
def test_setting_an_existing_key_raises_and_keeps_the_value(how: str) -> None:
    ctx = FrozenContext({"lr": 0.1})
    setter = ctx.add if how == "add" else ctx.__setitem__
    with pytest.raises(ContextMutationError, match="'lr'"):
        setter("lr", 0.2)
    assert ctx["lr"] == 0.1


def test_a_key_added_later_cannot_be_overwritten_either() -> None:
    ctx = FrozenContext({})
    ctx.add("seed", 1)
    with pytest.raises(ContextMutationError, match="'seed'"):
        ctx.add("seed", 1)


def test_context_mutation_error_is_an_exception() -> None:
    assert issubclass(ContextMutationError, Exception)


def test_setting_an_existing_key_to_the_same_value_is_still_refused() -> None:
    ctx = FrozenContext({"x": 1})
    with pytest.raises(ContextMutationError):
        ctx["x"] = 1


def test_attributes_metrics_artifacts_logger() -> None:
    logger = logging.getLogger("test.assay.context")
    ctx = FrozenContext({}, logger=logger)
    assert ctx.logger is logger
    assert isinstance(ctx.metrics, FrozenMetrics)
    assert len(ctx.artifacts) == 0
    assert isinstance(FrozenContext({}).logger, logging.Logger)


def test_record_appends_to_metrics_with_tags() -> None:
    ctx = FrozenContext({})
    ctx.record("loss", 0.9, tags={"epoch": 1})
    ctx.record("loss", 0.4)
    assert ctx.metrics.as_dict()["loss"] == (0.9, 0.4)
    assert ctx.metrics.get_tags("loss") == ({"epoch": 1}, {})


def test_as_dict_is_a_read_only_snapshot() -> None:
    ctx = FrozenContext({"a": 1})
    view = ctx.as_dict()
    assert view == {"a": 1}
    with pytest.raises(TypeError):
        view["b"] = 2  # type: ignore[index]
    ctx.add("b", 2)
    assert "b" not in view
    assert ctx.as_dict() == {"a": 1, "b": 2}


def test_initial_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="expected a mapping"):
        FrozenContext([("a", 1)])  # type: ignore[arg-type]


def test_keys_must_be_strings() -> None:
    with pytest.raises(TypeError, match=r"context key 3 .*expected a str"):
        FrozenContext({3: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="expected a str"):
        FrozenContext({}).add(("a",), 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- better than the reference


def test_in_len_and_iteration_work() -> None:
    ctx = FrozenContext({"a": 1, "b": 2})
    ctx.add("c", 3)
    assert "a" in ctx
    assert "z" not in ctx
    assert len(ctx) == 3
    assert list(ctx) == ["a", "b", "c"]
    assert dict(ctx.items()) == {"a": 1, "b": 2, "c": 3}
    assert isinstance(ctx, Mapping)


def test_mutating_a_read_dict_is_impossible_and_invisible() -> None:
    ctx = FrozenContext({"cfg": {"layers": [64, 64], "opt": {"lr": 0.1}}})
    cfg = ctx["cfg"]
    with pytest.raises(TypeError):
        cfg["layers"] = []
    with pytest.raises(TypeError):
        cfg["layers"].append(1)
    with pytest.raises(TypeError):
        cfg["opt"]["lr"] = 1.0
    assert ctx["cfg"] == {"layers": [64, 64], "opt": {"lr": 0.1}}


def test_list_tuple_and_set_values_are_stored_as_frozen_list_tuple_and_frozenset() -> None:
    ctx = FrozenContext({"xs": [1, [2, 3]], "t": (1, [2]), "s": {1, 2}})
    assert ctx["xs"] == [1, [2, 3]]
    assert type(ctx["xs"]) is FrozenList
    assert type(ctx["xs"][1]) is FrozenList
    assert ctx["t"] == (1, [2])
    assert type(ctx["t"]) is tuple
    assert ctx["s"] == frozenset({1, 2})


def test_caller_mutating_the_original_does_not_reach_the_context() -> None:
    original: dict[str, Any] = {"layers": [64]}
    ctx = FrozenContext({"cfg": original})
    original["layers"].append(128)
    original["new"] = True
    later: list[int] = [1]
    ctx.add("later", later)
    later.append(2)
    assert ctx["cfg"] == {"layers": [64]}
    assert ctx["later"] == [1]


def test_unfreezable_objects_are_copied_on_store_and_on_read() -> None:
    box = Box([1])
    ctx = FrozenContext({"box": box})
    box.items.append(2)  # the caller's object changes after storing
    read = ctx["box"]
    assert read.items == [1]
    read.items.append(3)  # a reader changes its copy
    assert ctx["box"].items == [1]
    assert ctx.get("box").items == [1]
    assert ctx.as_dict()["box"].items == [1]


def test_a_value_that_can_be_neither_frozen_nor_copied_is_refused_naming_the_key() -> None:
    class Uncopyable:
        def __deepcopy__(self, memo: object) -> None:
            raise RuntimeError("no copies")

    with pytest.raises(TypeError, match="context key 'handle'"):
        FrozenContext({"handle": Uncopyable()})


def test_numpy_arrays_are_stored_read_only_copies() -> None:
    np = pytest.importorskip("numpy")
    original = np.arange(4.0)
    ctx = FrozenContext({"w": original})
    original[0] = 99.0
    stored = ctx["w"]
    assert stored[0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        stored[1] = 5.0
    with pytest.raises(ValueError, match="WRITEABLE"):
        stored.flags.writeable = True
    nested = FrozenContext({"cfg": {"w": [np.ones(2)]}})["cfg"]["w"][0]
    assert not nested.flags.writeable


def test_numpy_object_arrays_fall_back_to_copy_on_read() -> None:
    np = pytest.importorskip("numpy")
    objs = np.empty(2, dtype=object)
    objs[0], objs[1] = [1], [2]
    ctx = FrozenContext({"objs": objs})
    ctx["objs"][0].append(9)
    assert ctx["objs"][0] == [1]


@given(st.dictionaries(keys, values, max_size=6))
def test_frozen_values_equal_their_thawed_originals(initial: dict[str, Any]) -> None:
    from assay_context import thaw

    ctx = FrozenContext(initial)
    assert set(ctx) == set(initial)
    for key, value in initial.items():
        assert thaw(ctx[key]) == value
        assert ctx[key] == value
        assert _is_frozen(ctx[key])


def _is_frozen(value: Any) -> bool:
    """Whether no container in ``value`` is a mutable list, dict or set."""
    if isinstance(value, (list, tuple)):
        return type(value) is not list and all(_is_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return type(value) is not dict and all(_is_frozen(v) for v in value.values())
    return type(value) is not set


@given(st.dictionaries(keys, leaves, max_size=6), keys, leaves)
def test_set_once_holds_for_any_key(initial: dict[str, Any], key: str, value: Any) -> None:
    ctx = FrozenContext(initial)
    if key in initial:
        with pytest.raises(ContextMutationError):
            ctx.add(key, value)
        assert ctx[key] == initial[key]
    else:
        ctx.add(key, value)
        assert key in ctx
        with pytest.raises(ContextMutationError):
            ctx[key] = value


# ---------------------------------------------------------------- child and merge


def test_child_sees_parent_keys_and_cannot_overwrite_them() -> None:
    run = FrozenContext({"lr": 0.1})
    step = run.child()
    assert step["lr"] == 0.1
    with pytest.raises(ContextMutationError, match="'lr'"):
        step["lr"] = 0.5
    assert run["lr"] == 0.1


def test_child_additions_stay_in_the_child_until_merged() -> None:
    run = FrozenContext({"lr": 0.1})
    step = run.child()
    step.add("weights", [1.0, 2.0])
    assert "weights" not in run
    run.merge(step)
    assert run["weights"] == [1.0, 2.0]


def test_child_shares_metrics_artifacts_and_logger() -> None:
    run = FrozenContext({})
    step = run.child()
    step.record("acc", 0.8)
    step.artifacts.add("a.txt", "hello")
    assert run.metrics["acc"] == (0.8,)
    assert "a.txt" in run.artifacts
    assert step.logger is run.logger


def test_merge_refuses_conflicting_values_and_changes_nothing() -> None:
    run = FrozenContext({"lr": 0.1})
    step = run.child()
    run.add("out", 1)
    step.add("out", 2)
    step.add("extra", 3)
    with pytest.raises(ContextMutationError, match="'out'"):
        run.merge(step)
    assert run["out"] == 1
    assert "extra" not in run


def test_merge_accepts_equal_values_and_plain_mappings() -> None:
    run = FrozenContext({"lr": 0.1, "cfg": {"a": [1]}})
    run.merge({"lr": 0.1, "cfg": {"a": [1]}, "new": "x"})
    assert run["new"] == "x"
    with pytest.raises(ContextMutationError, match="'lr'"):
        run.merge({"lr": 1})  # int 1 is neither 0.1 nor a float
    with pytest.raises(TypeError, match="expected a FrozenContext or a mapping"):
        run.merge([("a", 1)])  # type: ignore[arg-type]


def test_merge_distinguishes_types_and_array_contents() -> None:
    run = FrozenContext({"flag": 1})
    with pytest.raises(ContextMutationError):
        run.merge({"flag": True})
    np = pytest.importorskip("numpy")
    run.add("w", np.zeros(2))
    run.merge({"w": np.zeros(2)})
    with pytest.raises(ContextMutationError, match="'w'"):
        run.merge({"w": np.zeros(2, dtype=np.float32)})
    with pytest.raises(ContextMutationError, match="'w'"):
        run.merge({"w": np.ones(2)})


def test_frozen_dict_values_can_be_nested_in_new_keys() -> None:
    ctx = FrozenContext({"cfg": {"a": 1}})
    ctx.add("copy", ctx["cfg"])
    assert ctx["copy"] is ctx["cfg"]  # already frozen: shared, not copied
    assert isinstance(ctx["copy"], FrozenDict)


def test_repr_shows_the_values() -> None:
    assert repr(FrozenContext({"a": [1]})) == "FrozenContext({'a': FrozenList([1])})"


def test_guarded_copies_stay_guarded_however_they_arrive() -> None:
    import pickle

    from assay_context import LoggingContext

    def assert_guarded(ctx: FrozenContext, key: str) -> None:
        ctx[key].items.append(99)
        ctx.get(key).items.append(99)
        assert ctx[key].items == [1]

    later = FrozenContext({"plain": 1})
    later.add("box", Box([1]))  # the first guarded value comes after plain ones
    assert_guarded(later, "box")
    step = FrozenContext({"plain": 1}).child()
    step.add("box", Box([1]))
    assert_guarded(step, "box")
    merged = FrozenContext({})
    merged.merge(step)
    assert_guarded(merged, "box")
    restored = pickle.loads(pickle.dumps(FrozenContext({"box": Box([1])})))
    assert_guarded(restored, "box")
    proxy = LoggingContext(FrozenContext({"plain": 1}))
    proxy.add("box", Box([1]))
    assert_guarded(proxy, "box")
    assert_guarded(proxy.inner, "box")


def test_a_value_that_contains_itself_is_kept_as_a_guarded_copy() -> None:
    from assay_context import freeze

    loop: list[Any] = [1]
    loop.append(loop)
    ctx = FrozenContext({"loop": loop})  # crystallize stores it (its reads are deep copies)
    read = ctx["loop"]
    assert read[0] == 1
    assert read[1] is read  # the cycle survives, in a private copy
    read.append(2)
    assert len(ctx["loop"]) == 2  # copied on every read, like other unfreezable objects
    with pytest.raises(TypeError, match="contains itself"):
        freeze(loop)
    with pytest.raises(TypeError, match=r"metric 'loss'.*contains itself"):
        ctx.record("loss", 0.5, tags={"loop": loop})
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(
        ValueError,
        match=r"^context key 'deep': value is nested 5001 levels deep; expected at most 100 "
        r"levels of nested containers$",
    ):
        ctx.add("deep", deep)  # past MAX_NESTING: a clear error naming the key and the depth
