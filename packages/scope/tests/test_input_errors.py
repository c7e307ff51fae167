"""Wrong arguments to launch and update are refused with messages naming them."""

from __future__ import annotations

import pytest
from assay_scope import auto_param, launch, param_scope, run_cli


@auto_param("fit")
def fit(lr: float = 0.1) -> float:
    return lr


@pytest.mark.parametrize("entry", [launch, run_cli])
def test_a_string_argv_is_refused_naming_the_list_it_should_be(entry: object) -> None:
    # A str is a Sequence[str], so type checkers accept it; argparse then sees "-", "-", "l"...
    with pytest.raises(TypeError) as info:
        entry(fit, argv="--lr 0.5")  # type: ignore[operator]
    message = str(info.value)
    assert "argv='--lr 0.5'" in message
    assert "list of str" in message


def test_a_list_argv_still_works() -> None:
    assert launch(fit, argv=["--lr", "0.5"]) == 0.5
    assert run_cli(fit, argv=("--lr", "0.25")) == 0.25


@pytest.mark.parametrize("values", [[("a", 1)], "a=1", 3])
def test_update_refuses_what_is_not_a_mapping(values: object) -> None:
    scope = param_scope(b=2)
    with pytest.raises(TypeError) as info:
        scope.update(values)  # type: ignore[arg-type]
    assert repr(values) in str(info.value)
    assert "expected a mapping" in str(info.value)
    assert dict(scope) == {"b": 2}
