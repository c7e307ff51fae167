"""Entering and leaving scopes: nesting, restoring, detached and current scopes."""

from __future__ import annotations

import pytest
from assay_scope import param_scope
from hypothesis import given
from hypothesis import strategies as st


def visible() -> dict[str, object]:
    return param_scope.current().storage().storage()


def test_nested_scopes_override_and_leaving_restores_exactly() -> None:
    with param_scope(a=1, b=2):
        with param_scope(b=3, c=4):
            assert visible() == {"a": 1, "b": 3, "c": 4}
        assert visible() == {"a": 1, "b": 2}
    assert visible() == {}


def test_leaving_by_exception_restores_the_outer_values() -> None:
    with param_scope(a=1):

        def fail_inside() -> None:
            with param_scope(a=2, b=3):
                assert param_scope.a() == 2
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            fail_inside()
        assert visible() == {"a": 1}


def test_a_scope_created_but_not_entered_changes_nothing() -> None:
    with param_scope(a=1):
        unused = param_scope(a=2, b=3)
        assert param_scope.a() == 1
        assert param_scope.b(0) == 0
        # It still reads its own values over the ones visible where it was created.
        assert unused.a() == 2
        assert unused.b() == 3
        assert visible() == {"a": 1}


def test_writes_go_into_the_innermost_scope_and_vanish_with_it() -> None:
    with param_scope(a=1):
        with param_scope():
            param_scope.a = 2
            param_scope.current().b = 3
            param_scope.train.lr = 0.1
            assert visible() == {"a": 2, "b": 3, "train.lr": 0.1}
        assert visible() == {"a": 1}


def test_top_level_writes_stay_in_this_context() -> None:
    param_scope.z = 3
    assert param_scope.z() == 3
    with param_scope(z=4):
        assert param_scope.z() == 4
    assert param_scope.z() == 3


def test_empty_hides_every_enclosing_value() -> None:
    with param_scope(a=1), param_scope.empty(b=2) as ps:
        assert visible() == {"b": 2}
        assert param_scope.a("empty") == "empty"
        assert ps.b() == 2
    assert visible() == {}


def test_a_scope_entered_elsewhere_than_created_chains_to_where_it_is_entered() -> None:
    early = param_scope(x=1)
    with param_scope(y=2), early as ps:
        assert visible() == {"x": 1, "y": 2}
        assert ps.y() == 2
        ps.w = 5  # writes go to the scope's own values
    assert early.w() == 5
    assert visible() == {}


def test_the_same_scope_can_be_entered_again_inside_itself() -> None:
    ps = param_scope(a=1)
    with ps:
        with param_scope(a=2), ps:
            assert param_scope.a() == 1
        assert param_scope.a() == 1
        assert visible() == {"a": 1}
    assert visible() == {}


def test_init_enters_a_scope_for_the_rest_of_the_context() -> None:
    param_scope.init({"lr": 0.5, "model": {"width": 8}})
    assert param_scope.lr() == 0.5
    assert param_scope.model.width() == 8


def test_leaving_a_scope_unwinds_scopes_entered_inside_and_never_left() -> None:
    outer = param_scope(a=1)
    with outer:
        param_scope.init({"b": 2})
        assert visible() == {"a": 1, "b": 2}
    assert visible() == {}


def test_leaving_a_scope_that_was_not_entered_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not entered"):
        param_scope(a=1).__exit__(None, None, None)


@given(st.lists(st.dictionaries(st.sampled_from("abcde"), st.integers(), max_size=3), max_size=6))
def test_any_stack_of_scopes_sees_the_merge_and_unwinds(layers: list[dict[str, int]]) -> None:
    def enter(level: int, expected: dict[str, int]) -> None:
        assert visible() == expected
        if level == len(layers):
            return
        with param_scope(**layers[level]):
            enter(level + 1, {**expected, **layers[level]})
        assert visible() == expected

    enter(0, {})
