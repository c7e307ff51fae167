"""`assay run --grid`: values that are JSON lists or objects keep their commas."""

from __future__ import annotations

import re

import pytest

from assay._cliargs import UsageError, parse_grid


def test_grid_values_may_be_json_lists_and_objects() -> None:
    axes = parse_grid(["layers=[64, 64],[128,128,128]", 'opt={"name": "sgd", "m": 0.9},"a,b"'])
    assert axes == {
        "layers": [[64, 64], [128, 128, 128]],
        "opt": [{"name": "sgd", "m": 0.9}, "a,b"],
    }


def test_an_escaped_quote_does_not_end_a_quoted_value() -> None:
    assert parse_grid(['s="x\\",y",z']) == {"s": ['x",y', "z"]}


def test_grid_values_split_on_plain_commas() -> None:
    assert parse_grid(["n=1e3,1e4", "method=a,b", "x=[1]"]) == {
        "n": [1000.0, 10000.0],
        "method": ["a", "b"],
        "x": [[1]],
    }


@pytest.mark.parametrize("item", ["n=", "n=1,,2", "n=1,"])
def test_an_empty_grid_value_is_a_usage_error(item: str) -> None:
    # `--grid n=$SIZES` with SIZES unset must not sweep over the empty string
    with pytest.raises(UsageError, match=rf"--grid '{re.escape(item)}': an empty value"):
        parse_grid([item])


def test_the_empty_string_is_written_as_json() -> None:
    assert parse_grid(['s="",a']) == {"s": ["", "a"]}
