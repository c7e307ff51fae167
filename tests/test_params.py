"""Parameter spaces and canonical run ids of the experiment layer."""

from __future__ import annotations

import doctest
import importlib
import itertools
import math
from pathlib import Path

import pytest
from assay_ops import canonical_digest
from hypothesis import given
from hypothesis import strategies as st

from assay._canonical import RUN_ID_LENGTH, normalise, run_id
from assay._distributions import choice, loguniform, randint, uniform
from assay._runs import RunSpec, plan
from assay._space import as_space, explicit, grid, random

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
param_dicts = st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4)


# ---------------------------------------------------------------- grid


def test_grid_is_the_ordered_cartesian_product() -> None:
    space = grid(n=[10, 100], method=["a", "b", "c"])
    expected = [{"n": n, "method": m} for n, m in itertools.product([10, 100], ["a", "b", "c"])]
    assert space.expand(0) == expected
    assert len(space.expand(0)) == 6


def test_grid_accepts_ranges_and_numpy_values_as_plain_numbers() -> None:
    np = pytest.importorskip("numpy")
    space = grid(n=np.logspace(1, 2, 2), k=range(2), flag=[np.bool_(True)])
    values = space.expand(0)
    assert values[0] == {"n": 10.0, "k": 0, "flag": True}
    assert type(values[0]["n"]) is float
    assert type(values[0]["flag"]) is bool
    assert type(values[1]["k"]) is int


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"lr": 0.1}, TypeError, "parameter 'lr' = 0.1; expected a list"),
        ({"method": "abc"}, TypeError, "parameter 'method' = 'abc'; expected a list"),
        ({"n": []}, ValueError, "parameter 'n' has no values"),
        ({"n": [1, 2, 1]}, ValueError, "parameter 'n'"),
        ({"obj": [object()]}, TypeError, "parameter 'obj'"),
        ({"t": [(1, 2)]}, TypeError, "tuple"),
    ],
)
def test_grid_rejects_bad_input_naming_the_parameter(
    kwargs: dict[str, object], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        grid(**kwargs)  # type: ignore[arg-type]


def test_grid_keeps_one_and_one_point_zero_apart() -> None:
    # 1, 1.0 and True are different parameter values, hence different runs
    assert len(grid(x=[1, 1.0, True]).expand(0)) == 3


# ---------------------------------------------------------------- explicit lists


def test_explicit_list_keeps_order_and_values() -> None:
    items = [{"lr": 0.1}, {"lr": 0.01, "wd": 0.5}]
    assert explicit(items).expand(0) == items
    assert as_space(items).expand(0) == items
    assert as_space(None).expand(0) == [{}]


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ([{"a": 1}, 5], r"params\[1\] = 5 is a int; expected a dict"),
        ([{"a": 1}, {"a": 1}], "appears twice"),
        ([{"a": {1: 2}}], r"params\[0\]\['a'\]: dict key 1"),
        ({"a": 1}, "expected a list of dicts"),
        ([{"f": print}], r"params\[0\]\['f'\]"),
    ],
)
def test_explicit_list_rejects_bad_items(items: object, fragment: str) -> None:
    with pytest.raises((TypeError, ValueError), match=fragment):
        as_space(items)  # type: ignore[arg-type]


# ---------------------------------------------------------------- random search


def test_random_search_is_reproducible_from_the_root_seed() -> None:
    space = random(20, lr=loguniform(1e-4, 1e-1), wd=uniform(0.0, 0.5), k=randint(1, 4))
    first = space.expand(7)
    assert first == space.expand(7)
    assert first != space.expand(8)
    assert len(first) == 20
    for params in first:
        assert 1e-4 <= params["lr"] < 1e-1
        assert 0.0 <= params["wd"] < 0.5
        assert params["k"] in {1, 2, 3}


def test_random_search_explicit_seed_overrides_the_root_seed() -> None:
    space = random(5, seed=3, x=uniform(0, 1))
    assert space.expand(1) == space.expand(2) == random(5, x=uniform(0, 1)).expand(3)


def test_loguniform_spreads_over_decades() -> None:
    values = random(2000, lr=loguniform(1e-4, 1e-1)).expand(0)
    logs = [math.log10(p["lr"]) for p in values]
    below = sum(x < -2.5 for x in logs) / len(logs)
    assert 0.4 < below < 0.6  # half the draws fall below the middle decade on a log scale


def test_random_choice_and_fixed_values() -> None:
    values = random(50, opt=choice(["adam", "sgd"]), epochs=3, lr=uniform(0, 1)).expand(0)
    assert {p["opt"] for p in values} == {"adam", "sgd"}
    assert {p["epochs"] for p in values} == {3}


def test_random_draws_of_a_discrete_space_collapse_duplicates() -> None:
    values = random(40, opt=choice(["adam", "sgd"])).expand(0)
    assert sorted(p["opt"] for p in values) == ["adam", "sgd"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"lr": loguniform(0.0, 1.0)}, "parameter 'lr': loguniform"),
        ({"lr": loguniform(1e-1, 1e-4)}, "parameter 'lr'.*0 < low < high"),
        ({"x": uniform(1.0, 1.0)}, "parameter 'x'.*low < high"),
        ({"x": uniform(0.0, math.inf)}, "parameter 'x'.*finite"),
        ({"k": randint(0, 2.5)}, "parameter 'k'.*high must be an int"),  # type: ignore[arg-type]
        ({"o": choice([])}, "parameter 'o'.*no options"),
        ({"o": choice("ab")}, "parameter 'o'.*list of options"),
        ({"o": object()}, "parameter 'o'"),
    ],
)
def test_random_rejects_bad_distributions_naming_the_parameter(
    kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=fragment):
        random(3, **kwargs)


@pytest.mark.parametrize(
    ("low", "high", "label"),
    [(0, 2**63 + 1, "high"), (-(2**63) - 1, 0, "low"), (0, 10**30, "high")],
)
def test_randint_bounds_beyond_int64_are_refused_when_built(
    low: int, high: int, label: str
) -> None:
    # numpy draws 64-bit integers: a bound beyond them is an error of the space, found at once
    with pytest.raises(ValueError, match=rf"parameter 'k': randint\(.*\): {label} must be"):
        random(3, k=randint(low, high))


def test_randint_draws_over_the_whole_int64_range() -> None:
    drawn = [p["k"] for p in random(50, k=randint(-(2**63), 2**63)).expand(0)]
    assert len(drawn) == 50
    assert all(type(k) is int and -(2**63) <= k < 2**63 for k in drawn)
    # spread over the range, not clipped
    assert min(drawn) < -(2**60)
    assert max(drawn) > 2**60


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_random_rejects_bad_n(n: object) -> None:
    with pytest.raises(ValueError, match=f"n = {n!r}"):
        random(n, x=uniform(0, 1))  # type: ignore[arg-type]


def test_spaces_concatenate() -> None:
    space = grid(a=[1, 2]) + explicit([{"a": 3, "b": 0}])
    assert space.expand(0) == [{"a": 1}, {"a": 2}, {"a": 3, "b": 0}]
    with pytest.raises(ValueError, match="appears twice"):
        (grid(a=[1]) + grid(a=[1])).expand(0)


# ---------------------------------------------------------------- canonical ids


@given(param_dicts, st.integers(0, 1000))
def test_run_id_is_a_pure_function_of_params_and_replicate(params: dict, rep: int) -> None:
    shuffled = dict(reversed(list(params.items())))
    assert run_id(params, rep) == run_id(shuffled, rep)
    assert run_id(params, rep) != run_id(params, rep + 1)


@given(json_values, json_values)
def test_run_ids_are_injective_on_json_data(a: object, b: object) -> None:
    assert (run_id({"x": a}, 0) == run_id({"x": b}, 0)) == (_typed(a) == _typed(b))


@given(param_dicts, st.integers(0, 1000))
def test_run_id_is_the_ops_digest_of_params_and_replicate(params: dict, rep: int) -> None:
    # one encoding for seeds and run ids: the one of assay-ops, version included
    expected = canonical_digest({"params": params, "replicate": rep})[:RUN_ID_LENGTH]
    assert run_id(params, rep) == expected


def test_run_ids_are_stable() -> None:
    # Resuming an experiment relies on these: a change here renames every stored run.
    assert run_id({"n": 10}, 0) == "1764d50552841447570d"
    params = {"lr": 0.1, "method": "adam", "layers": [64, 64], "wd": None}
    assert run_id(params, 2) == "6e4ae626cd8aa57027f3"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"x": 1}, {"x": 1.0}),
        ({"x": 1}, {"x": True}),
        ({"x": 0.0}, {"x": -0.0}),
    ],
)
def test_values_equal_in_python_are_distinct_runs(a: dict, b: dict) -> None:
    assert explicit([a, b]).expand(0) == [a, b]  # not refused as a duplicate


def test_the_same_params_in_another_order_are_a_duplicate() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        explicit([{"a": 1, "b": [1.0, None]}, {"b": [1.0, None], "a": 1}])


def _typed(value: object) -> object:
    """Value with its type made part of equality, so 1 != 1.0 != True."""
    if isinstance(value, list):
        return ("list", tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return ("dict", frozenset((k, _typed(v)) for k, v in value.items()))
    if isinstance(value, float) and value == 0.0:
        return (float, math.copysign(1.0, value))  # -0.0 and 0.0 are distinct floats
    return (type(value), value)


def test_run_ids_distinguish_types() -> None:
    ids = {run_id({"x": v}, 0) for v in [1, 1.0, True, "1", [1], None]}
    assert len(ids) == 6


def test_normalise_names_the_offending_value() -> None:
    with pytest.raises(TypeError, match=r"parameter 'p'\[1\] = \{1, 2\} is a set"):
        normalise([1, {1, 2}], "parameter 'p'")


def test_plan_makes_one_run_per_params_and_replicate() -> None:
    specs = plan(grid(a=[1, 2]), replicates=3, seed=0)
    assert [(s.params["a"], s.replicate) for s in specs] == [
        (a, r) for a in (1, 2) for r in range(3)
    ]
    assert len({s.run_id for s in specs}) == 6
    assert specs[0] == RunSpec.of({"a": 1}, 0)
    with pytest.raises(ValueError, match="replicates = 0"):
        plan(grid(a=[1]), replicates=0, seed=0)


@pytest.mark.parametrize("module", ["assay._space", "assay._canonical", "assay._runs"])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0
    assert result.attempted > 0


@pytest.mark.parametrize(
    "module",
    [
        "assay",
        "assay._index",
        "assay._results",
        "assay._cli",
        "assay._cliargs",
        "assay._experiment",
        "assay._outcomes",
    ],
)
def test_docstring_examples_of_the_experiment_layer_run(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0
    assert result.attempted > 0
