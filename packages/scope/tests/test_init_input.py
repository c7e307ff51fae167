"""param_scope.init: bad params are refused with a message naming them and what was expected."""

from __future__ import annotations

import pytest
from assay_scope import param_scope


@pytest.mark.parametrize(
    ("params", "shown"),
    [([1], "[1]"), ("lr=0.5", "'lr=0.5'"), ({1: 2}, "1"), (3, "3")],
)
def test_init_refuses_what_is_not_a_mapping_of_str_keys(params: object, shown: str) -> None:
    before = param_scope.current().storage().storage()
    with pytest.raises(TypeError) as info:
        param_scope.init(params)  # type: ignore[arg-type]
    message = str(info.value)
    assert "param_scope.init" in message
    assert shown in message
    assert "expected a mapping" in message
    # Nothing was entered.
    assert param_scope.current().storage().storage() == before


def test_init_takes_any_mapping_and_none() -> None:
    param_scope.init(None)
    assert param_scope.current().storage().storage() == {}
    param_scope.init({"lr": 0.5})
    assert param_scope.lr(0.1) == 0.5
