"""auto_param: scope values for defaulted parameters, explicit arguments first."""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

import pytest
from assay_scope import ConversionError, auto_param, param_scope
from hypothesis import given
from hypothesis import strategies as st


@auto_param
def foo(a: Any, b: int = 2, c: str = "c", d: Any = None) -> tuple[Any, ...]:
    return a, b, c, d


def test_defaults_apply_without_a_scope() -> None:
    assert foo(1) == (1, 2, "c", None)


def test_scope_values_beat_defaults_and_convert_to_their_type() -> None:
    with param_scope("foo.b=3", "foo.c=7", **{"foo.d": [1]}):
        assert foo(1) == (1, 3, "7", [1])


def test_explicit_arguments_beat_scope_values_positional_or_keyword() -> None:
    with param_scope(**{"foo.b": 3, "foo.c": "s"}):
        # The reference raises TypeError ("multiple values for argument 'b") here.
        assert foo(1, 5) == (1, 5, "s", None)
        assert foo(1, 5, "x") == (1, 5, "x", None)
        assert foo(1, b=6) == (1, 6, "s", None)
        assert foo(a=1, c="k") == (1, 3, "k", None)


def test_namespace_string_and_nested_namespace() -> None:
    @auto_param("myns.foo.params")
    def bar(a: int, b: int = 2) -> int:
        return a + b

    with param_scope("myns.foo.params.b=3"):
        assert bar(1) == 4
        param_scope.myns.foo.params.b = 10
        assert bar(1) == 11
    assert bar(1) == 3


def test_classes_keep_being_classes() -> None:
    @auto_param
    class Model:
        def __init__(self, width: int = 8, depth: int = 2) -> None:
            self.width, self.depth = width, depth

    class Bigger(Model):
        pass

    with param_scope(**{"Model.width": "64"}):
        model = Model()
        assert (model.width, model.depth) == (64, 2)
        assert isinstance(model, Model)
        assert Model(1).width == 1
        assert Bigger().width == 64  # subclasses inherit the wrapped __init__


def test_keyword_only_and_variadic_parameters() -> None:
    @auto_param("k")
    def kw(*args: int, scale: float = 1.0, **extra: Any) -> tuple[Any, ...]:
        return args, scale, extra

    with param_scope(**{"k.scale": "2.5", "k.args": 9, "k.extra": 9}):
        assert kw(1, 2) == ((1, 2), 2.5, {})
        assert kw(1, scale=3.0, z=1) == ((1,), 3.0, {"z": 1})


def test_positional_only_defaults_are_left_alone() -> None:
    @auto_param("p")
    def pos(a: int = 1, /, b: int = 2) -> tuple[int, int]:
        return a, b

    with param_scope(**{"p.a": 10, "p.b": 20}):
        assert pos() == (1, 20)


def test_a_value_that_does_not_convert_raises_only_when_used() -> None:
    with param_scope(**{"foo.b": "abc"}):
        with pytest.raises(ConversionError, match=r"'foo\.b' = 'abc'"):
            foo(1)
        assert foo(1, 4) == (1, 4, "c", None)  # explicit: the bad value is not needed


def test_later_writes_and_new_scopes_are_seen_by_the_next_call() -> None:
    with param_scope() as ps:
        assert foo(0)[1] == 2
        ps.foo.b = 5
        assert foo(0)[1] == 5
        with param_scope(**{"foo.b": 6}):
            assert foo(0)[1] == 6
        assert foo(0)[1] == 5
        param_scope.foo.b = 7
        assert foo(0)[1] == 7


def test_wrapper_keeps_name_doc_and_signature() -> None:
    def documented(x: int, y: int = 1) -> int:
        """Add."""
        return x + y

    wrapped = auto_param(documented)
    assert wrapped.__name__ == "documented"
    assert wrapped.__doc__ == "Add."
    assert inspect.signature(wrapped) == inspect.signature(documented)
    assert wrapped._auto_param_namespace == "documented"  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [3, "", "a..b", ".a"])
def test_bad_namespaces_are_refused(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(repr(bad))):
        auto_param(bad)(lambda x=1: x)


def test_a_callable_without_a_usable_name_needs_a_namespace() -> None:
    def scale(x: int, factor: int = 2) -> int:
        return x * factor

    with pytest.raises(ValueError, match="give one"):
        auto_param(functools.partial(scale, 1))
    with pytest.raises(ValueError, match="give one"):
        auto_param(lambda x=1: x)
    named = auto_param("scale")(functools.partial(scale, 1))
    with param_scope(**{"scale.factor": 5}):
        assert named() == 5


@given(st.integers(), st.integers())
def test_scope_value_used_exactly_when_not_passed(scope_value: int, passed: int) -> None:
    with param_scope(**{"foo.b": scope_value}):
        assert foo(0)[1] == scope_value
        assert foo(0, passed)[1] == passed
        assert foo(0, b=passed)[1] == passed
