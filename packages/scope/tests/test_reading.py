"""Reading values: defaults, conversions, dotted keys, mappings, accessors, exact round trips."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from assay_scope import ConversionError, MissingParameterError, param_scope
from hypothesis import given
from hypothesis import strategies as st

KEY = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,3}", fullmatch=True)


def test_missing_key_without_default_raises_a_key_error_naming_the_key() -> None:
    ps = param_scope.empty(a=1)
    with pytest.raises(KeyError) as caught:
        ps.train.lr()
    assert isinstance(caught.value, MissingParameterError)
    assert caught.value.key == "train.lr"
    assert "'train.lr'" in str(caught.value)
    with pytest.raises(MissingParameterError):
        ps["nope"]


def test_defaults_for_missing_keys_both_spellings() -> None:
    ps = param_scope.empty()
    assert ps.c("default") == "default"
    assert (ps.c | "default") == "default"
    assert ps.c(None) is None
    assert ps.c.get_or_else(5) == 5


@pytest.mark.parametrize(
    ("stored", "default", "expected"),
    [
        (1, "empty", "1"),
        ("3", 0, 3),
        ("3.0", 0, 3),
        (3.0, 0, 3),
        ("-12", 0, -12),
        ("0.5", 0.0, 0.5),
        (2, 0.0, 2.0),
        ("true", False, True),
        ("false", True, False),
        ("1", False, True),
        ("0", True, False),
        ("yes", False, True),
        ("no", True, False),
        ("ON", False, True),
        (1, False, True),
        (0, True, False),
        ([1, 2], [], [1, 2]),
        ("text", None, "text"),
    ],
)
def test_values_convert_to_the_type_of_the_default(
    stored: Any, default: Any, expected: Any
) -> None:
    value = param_scope.empty(v=stored).v(default)
    assert value == expected
    assert type(value) is type(expected)
    assert type(param_scope.empty(v=stored).v | default) is type(expected)


@pytest.mark.parametrize(
    ("stored", "default", "expected_type"),
    [
        ("abc", 0, int),
        ("2.5", 0, int),
        (3.7, 0, int),
        ("abc", 0.0, float),
        ("maybe", False, bool),
        (2, False, bool),
        (object(), 0, int),
    ],
)
def test_values_that_do_not_convert_raise_naming_key_value_and_type(
    stored: Any, default: Any, expected_type: type
) -> None:
    ps = param_scope.empty(**{"train.epochs": stored})
    with pytest.raises(ValueError, match="cannot be converted") as caught:
        ps.train.epochs(default)
    error = caught.value
    assert isinstance(error, ConversionError)
    assert (error.key, error.value, error.expected) == ("train.epochs", stored, expected_type)
    message = str(error)
    assert "'train.epochs'" in message
    assert repr(stored) in message
    assert expected_type.__name__ in message


@given(st.integers())
def test_integers_of_any_size_convert_exactly_from_strings(number: int) -> None:
    assert param_scope.empty(n=str(number)).n(0) == number


@given(st.floats(allow_nan=False))
def test_floats_convert_exactly_from_their_repr(number: float) -> None:
    assert param_scope.empty(x=repr(number)).x(0.0) == number


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(),
        st.binary(),
        st.lists(st.integers()),
        st.tuples(st.integers(), st.text()),
    )
)
def test_any_value_round_trips_exactly_without_a_default(value: Any) -> None:
    with param_scope(**{"a.b": value}) as ps:
        assert ps.a.b() is value
        assert param_scope.a.b() is value
        assert ps["a.b"] is value


def test_none_big_ints_and_objects_round_trip() -> None:
    marker = object()
    big = 2**100 + 1
    with param_scope(nothing=None, big=big, obj=marker, nan=math.nan) as ps:
        assert ps.nothing() is None
        # A stored None is a value: it is returned even when a default is given.
        assert ps.nothing(5) is None
        assert (ps.nothing | "x") is None
        assert ps.big() == big
        assert ps.big(0) == big
        assert str(ps.big("")) == str(big)
        assert ps.obj() is marker
        assert ps.obj(None) is marker
        assert math.isnan(ps.nan(0.0))


def test_dotted_keys_both_ways() -> None:
    nested = param_scope.empty(a={"b": {"c": [1, 2]}})
    dotted = param_scope.empty(**{"a.b.c": [1, 2]})
    assert nested.a.b.c() == dotted.a.b.c() == [1, 2]
    assert dict(nested) == dict(dotted) == {"a.b.c": [1, 2]}
    assert nested["a.b.c"] == [1, 2]
    assert nested.a["b"].c() == [1, 2]
    # A dict that is empty or has non-string keys is a value, not a namespace.
    odd = param_scope.empty(blank={}, table={1: "one"})
    assert odd.blank() == {}
    assert odd.table() == {1: "one"}


def test_a_nested_dict_given_at_creation_is_flattened_whatever_is_done_first() -> None:
    # The values are flattened when first needed; every first use must see them flat.
    def make() -> param_scope:
        return param_scope(m={"a": 1, "b": {"c": 2}}, x=0)

    ps = make()
    ps.m = 5  # a write before any read overrides nothing it should keep
    assert dict(ps) == {"m.a": 1, "m.b.c": 2, "x": 0, "m": 5}
    ps = make()
    ps.update({"m": {"a": 9}})
    assert (ps.m.a(), ps.m.b.c()) == (9, 2)
    assert repr(make()) == "param_scope({'m.a': 1, 'm.b.c': 2, 'x': 0})"
    with make():  # entered, then read through the current scope
        assert (param_scope.m.a(), param_scope.m.b.c(), sorted(param_scope.current())) == (
            1,
            2,
            ["m.a", "m.b.c", "x"],
        )
    with param_scope(other=1), make() as entered_elsewhere:  # a node shares the values
        assert dict(entered_elsewhere) == {"other": 1, "m.a": 1, "m.b.c": 2, "x": 0}
    with param_scope.empty(m={"a": 1}) as detached:
        assert dict(detached) == {"m.a": 1}


def test_threads_reading_a_new_scope_at_once_see_the_same_flat_values() -> None:
    def read(ps: param_scope, barrier: threading.Barrier, seen: list[Any]) -> None:
        barrier.wait()
        seen.append((ps.m.a(), dict(ps)))
        ps[f"t{threading.get_ident()}"] = 1  # writes all land in the one dict

    for _ in range(20):
        ps = param_scope(m={"a": 1, "b": 2})
        barrier = threading.Barrier(4)
        seen: list[Any] = []
        threads = [threading.Thread(target=read, args=(ps, barrier, seen)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [value for value, _ in seen] == [1] * 4
        assert all({"m.a": 1, "m.b": 2}.items() <= values.items() for _, values in seen)
        assert len(dict(ps)) == 6


def test_strings_split_on_the_first_equal_sign() -> None:
    ps = param_scope.empty("a.b=1", "x=2", "expr=y=z")
    assert dict(ps) == {"a.b": "1", "x": "2", "expr": "y=z"}
    assert ps.a.b(0) == 1


@pytest.mark.parametrize("bad", ["noequals", "=3", 3])
def test_malformed_strings_raise_naming_the_argument(bad: Any) -> None:
    with pytest.raises(ValueError, match=repr(bad)):
        param_scope(bad)


def test_dict_and_storage_views_are_plain_dicts_of_every_visible_key() -> None:
    with param_scope.empty(a=1, b=2), param_scope(b=3, c=4) as ps:
        assert dict(ps) == {"a": 1, "b": 3, "c": 4}
        storage = ps.storage().storage()
        assert type(storage) is dict
        assert storage == {"a": 1, "b": 3, "c": 4}
        storage["a"] = 100  # a copy: changing it changes nothing
        assert ps.a() == 1
        assert sorted(ps.keys()) == ["a", "b", "c"]
        assert sorted(ps) == ["a", "b", "c"]
        assert len(ps) == 3
        assert "a" in ps
        assert "z" not in ps
        assert ps.get("z", 9) == 9
        assert ps.get("c") == 4


def test_a_held_accessor_reads_the_keys_under_it() -> None:
    ps = param_scope.empty(**{"train.lr": 0.1, "train.epochs": 3})
    p = ps.train
    assert p.lr() == 0.1
    assert p.epochs() == 3
    assert (p.batch | 32) == 32
    ps.train.lr = 0.5  # the accessor reads at call time, so it sees later writes
    assert p.lr() == 0.5
    assert ps().train.lr() == 0.5


def test_class_level_accessor_held_in_a_variable_follows_the_current_scope() -> None:
    lr = param_scope.train.lr
    with param_scope(**{"train.lr": 1}):
        assert lr(0) == 1
        with param_scope(**{"train.lr": 2}):
            assert lr(0) == 2
    assert lr(0) == 0


def test_any_public_name_is_a_key_under_an_accessor() -> None:
    ps = param_scope.empty(**{"opt.func": "adam", "opt.args": 2, "opt.keywords": "k"})
    assert (ps.opt.func(), ps.opt.args | 0, param_scope.empty().opt.keywords("none")) == (
        "adam",
        2,
        "none",
    )
    ps.opt.args = 3
    assert ps["opt.args"] == 3
    with ps:
        assert (param_scope.opt.func(), param_scope.opt.args | 0) == ("adam", 3)


def test_an_accessor_kept_as_a_class_attribute_stays_an_accessor() -> None:
    class Config:
        lr = param_scope.train.lr

    with param_scope(**{"train.lr": 0.5}):
        assert Config.lr(0.1) == Config().lr | 0.1 == 0.5


def test_truth_of_an_accessor() -> None:
    ps = param_scope.empty(yes=1, zero=0)
    assert ps.yes
    assert not ps.zero
    assert not ps.missing


def test_writes_through_attributes_items_and_update() -> None:
    ps = param_scope.empty()
    ps.a = 1
    ps.b.c = 2
    ps["d.e"] = 3
    ps.update({"f": {"g": 4}})
    ps.put("h", 5)
    assert dict(ps) == {"a": 1, "b.c": 2, "d.e": 3, "f.g": 4, "h": 5}
    ps.clear()
    assert dict(ps) == {}
    with pytest.raises(TypeError, match="expected a str"):
        ps.put(3, 1)  # type: ignore[arg-type]


def test_private_names_are_not_parameters() -> None:
    ps = param_scope.empty(a=1)
    with pytest.raises(AttributeError):
        _ = ps._not_a_param
    with pytest.raises(AttributeError):
        _ = ps.a.__array__
    with pytest.raises(AttributeError):
        _ = param_scope._hidden


@given(st.dictionaries(KEY, st.integers(), max_size=8))
def test_every_written_key_reads_back(values: dict[str, int]) -> None:
    ps = param_scope.empty(**values)
    for key, value in values.items():
        assert ps[key] == value
        accessor = ps
        for part in key.split("."):
            accessor = getattr(accessor, part)
        assert accessor() == value


def test_a_subclass_keeps_its_own_attributes_and_reads_others_at_class_level() -> None:
    assert param_scope.probe(0) == 0  # param_scope now knows "probe" as a class-level key

    class Custom(param_scope):
        def probe(self) -> str:
            return "method"

    with param_scope(other=3):
        assert Custom(x=1).probe() == "method"
        assert Custom.other(0) == 3
