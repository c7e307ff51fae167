"""Keys whose names start with an underscore: written like any key, read through ``[...]``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from assay_scope import param_scope


@pytest.fixture(autouse=True)
def no_class_attribute_left() -> Iterator[None]:
    # A class-level write that wrongly became a class attribute must not leak into other tests.
    yield
    for name in ("_secret", "_seed"):
        if name in vars(param_scope):
            delattr(param_scope, name)


def test_writing_an_underscore_name_on_a_scope_sets_the_parameter() -> None:
    with param_scope() as ps:
        ps._secret = 1
        assert dict(ps) == {"_secret": 1}
        assert ps["_secret"] == 1
        assert param_scope.current()["_secret"] == 1


def test_writing_an_underscore_name_at_class_level_sets_the_parameter_in_the_current_scope() -> (
    None
):
    with param_scope():
        param_scope._seed = 1
        assert dict(param_scope.current()) == {"_seed": 1}
    assert "_seed" not in vars(param_scope)
    assert "_seed" not in param_scope.current()


def test_an_accessor_writes_an_underscore_name_below_its_key() -> None:
    with param_scope() as ps:
        ps.train._seed = 3
        assert dict(ps) == {"train._seed": 3}
        assert ps.train["_seed"]() == 3


def test_reading_an_underscore_name_as_an_attribute_says_how_to_read_it() -> None:
    # Such names stay Python's (copy, pickle and notebooks probe them), so the read is refused
    # with a message giving the spelling that works.
    with param_scope(_secret=1, **{"train._seed": 2}) as ps:
        with pytest.raises(AttributeError, match=r"ps\['_secret'\]"):
            ps._secret()
        with pytest.raises(AttributeError, match=r"param_scope.current\(\)\['_secret'\]"):
            param_scope._secret(0)
        with pytest.raises(AttributeError, match=r"accessor\['_seed'\]"):
            ps.train._seed()
        assert ps["_secret"] == 1
        assert param_scope.current()["train._seed"] == 2


def test_dunder_names_stay_python_attributes() -> None:
    ps = param_scope()
    ps.__doc__ = "a scope"
    assert ps.__doc__ == "a scope"
    assert dict(ps) == {}
