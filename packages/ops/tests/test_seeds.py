"""SeedBundle: independent streams per (root seed, params, replicate), identical everywhere."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from assay_ops import DEFAULT_ROOT_SEED, SeedBundle, canonical_digest
from hypothesis import given, settings
from hypothesis import strategies as st

PARAMS = {"lr": 0.1, "layers": [64, 64]}


def first_draws(bundle: SeedBundle, n: int = 4) -> list[int]:
    return [int(word) for word in bundle.numpy().bit_generator.random_raw(n)]


def test_stream_is_numpys_seed_sequence_over_root_params_and_replicate() -> None:
    # The documented derivation: entropy = root seed, spawn key = digest words + replicate.
    digest = canonical_digest(PARAMS)
    words = [int(digest[i : i + 8], 16) for i in range(0, 64, 8)]
    expected = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(42, spawn_key=(*words, 3)))
    )
    bundle = SeedBundle(42, PARAMS, replicate=3)
    assert bundle.numpy().random(5).tolist() == expected.random(5).tolist()
    assert bundle.entropy == 42
    assert bundle.spawn_key == (*words, 3)


def test_known_values_stay_stable() -> None:
    # Pinned values: they change only if the derivation (or numpy's PCG64/SeedSequence,
    # which numpy keeps stable) changes, and then every stored result would be irreproducible.
    bundle = SeedBundle(42, PARAMS, replicate=3)
    assert first_draws(bundle, 3) == [
        9782353558318518572,
        10972263547113295903,
        17984553537060985003,
    ]
    assert bundle.integer() == 598732107
    assert bundle.integer(bits=64) == 13471229318947401035
    assert bundle.integer("x") == 3601381242
    assert bundle.python().random() == 0.7709527328848184
    assert first_draws(bundle.spawn(2)[1], 1) == [3522330732077508610]
    assert first_draws(SeedBundle(), 1) == [4651921473183116168]


def test_same_triple_same_stream_and_each_call_starts_at_the_beginning() -> None:
    a = SeedBundle(7, PARAMS, replicate=1)
    b = SeedBundle(7, dict(reversed(list(PARAMS.items()))), replicate=1)
    assert first_draws(a) == first_draws(b) == first_draws(a)
    assert a == b
    assert hash(a) == hash(b)
    assert a.python().random() == b.python().random()
    assert a.integer() == b.integer()


@pytest.mark.parametrize(
    "other",
    [
        SeedBundle(7, PARAMS, replicate=2),
        SeedBundle(8, PARAMS, replicate=1),
        SeedBundle(7, {**PARAMS, "lr": 0.2}, replicate=1),
        SeedBundle(7, {**PARAMS, "lr": 1}, replicate=1),
        SeedBundle(7, {}, replicate=1),
    ],
)
def test_any_change_of_root_params_or_replicate_changes_the_stream(other: SeedBundle) -> None:
    # The references give every condition the same stream; here each condition has its own.
    base = SeedBundle(7, PARAMS, replicate=1)
    assert first_draws(base) != first_draws(other)
    assert base.integer() != other.integer()
    assert base != other


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.floats(allow_nan=False))
def test_replicates_are_independent_streams(r1: int, r2: int, lr: float) -> None:
    a, b = SeedBundle(0, {"lr": lr}, r1), SeedBundle(0, {"lr": lr}, r2)
    assert (first_draws(a) == first_draws(b)) == (r1 == r2)


def test_streams_are_statistically_uncorrelated() -> None:
    draws = [SeedBundle(0, {"lr": lr}).numpy().random(2000) for lr in (0.1, 0.2, 0.3)]
    correlation = np.asarray(np.corrcoef(draws))
    off_diagonal = correlation[~np.eye(3, dtype=bool)]
    assert np.all(np.abs(off_diagonal) < 0.1)


_CHILD = """
import json, sys
from assay_ops import SeedBundle
bundle = SeedBundle(42, {"lr": 0.1, "layers": [64, 64]}, replicate=3)
print(json.dumps({
    "numpy": bundle.numpy().bit_generator.random_raw(4).tolist(),
    "python": bundle.python().random(),
    "integer": bundle.integer(),
    "child": bundle.spawn(3)[2].numpy().bit_generator.random_raw(2).tolist(),
}))
"""


@pytest.mark.slow
def test_another_process_gets_the_identical_stream() -> None:
    # A fresh interpreter with a different hash seed: nothing may depend on hash() or memory.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, env=env
    )
    there = json.loads(out.stdout)
    bundle = SeedBundle(42, PARAMS, replicate=3)
    assert there == {
        "numpy": first_draws(bundle),
        "python": bundle.python().random(),
        "integer": bundle.integer(),
        "child": first_draws(bundle.spawn(3)[2], 2),
    }


def test_spawn_gives_independent_children_and_is_stateless() -> None:
    parent = SeedBundle(1, PARAMS)
    children = parent.spawn(3)
    streams = [first_draws(child) for child in [parent, *children]]
    assert len({tuple(s) for s in streams}) == 4
    assert [first_draws(c) for c in parent.spawn(3)] == streams[1:]
    grandchildren = children[0].spawn(2)
    assert first_draws(grandchildren[0]) not in streams
    assert parent.spawn(0) == []


def test_named_sub_streams_are_independent_and_reproducible() -> None:
    bundle = SeedBundle(1, PARAMS)
    init, noise = bundle.numpy("init"), bundle.numpy("noise")
    assert init.random() != noise.random()
    assert bundle.numpy("init").random() == SeedBundle(1, PARAMS).numpy("init").random()
    assert bundle.numpy("init").random() != bundle.numpy().random()
    with pytest.raises(ValueError, match="name=''"):
        bundle.numpy("")


def test_python_and_integer_streams() -> None:
    bundle = SeedBundle(5)
    assert 0 <= bundle.integer() < 2**32
    assert 0 <= bundle.integer(bits=64) < 2**64
    assert bundle.integer("a") != bundle.integer("b")
    values = [bundle.python().random() for _ in range(2)]
    assert values[0] == values[1]
    with pytest.raises(ValueError, match="bits=16"):
        bundle.integer(bits=16)


def test_default_root_seed_is_fixed_and_documented() -> None:
    assert DEFAULT_ROOT_SEED == 0
    assert first_draws(SeedBundle()) == first_draws(SeedBundle(0, {}, 0))
    assert SeedBundle().root_seed == 0
    assert SeedBundle(params=None) == SeedBundle(params={})


def test_torch_without_torch_raises_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" fail
    with pytest.raises(ImportError, match=r"SeedBundle.torch\(\) needs PyTorch"):
        SeedBundle(0).torch()


def test_torch_generator_when_torch_is_installed() -> None:
    torch = pytest.importorskip("torch")
    a, b = SeedBundle(3).torch(), SeedBundle(3).torch()
    assert torch.rand(3, generator=a).tolist() == torch.rand(3, generator=b).tolist()


def test_key_round_trips_through_json_and_pickle() -> None:
    bundle = SeedBundle(2**70, PARAMS, replicate=9).spawn(2)[1]
    rebuilt = SeedBundle.from_key(json.loads(json.dumps(bundle.key)))
    assert rebuilt == bundle
    assert first_draws(rebuilt) == first_draws(bundle)
    restored = pickle.loads(pickle.dumps(bundle))
    assert restored == bundle
    assert first_draws(restored) == first_draws(bundle)
    assert bundle.replicate == bundle.replicate_index == 9
    assert bundle.params_digest == canonical_digest(PARAMS)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"root_seed": -1}, ValueError, "root_seed=-1"),
        ({"root_seed": 1.5}, TypeError, "root_seed=1.5"),
        ({"root_seed": True}, TypeError, "root_seed=True"),
        ({"replicate": -2}, ValueError, "replicate=-2"),
        ({"replicate": 2**32}, ValueError, "replicate=4294967296"),
        ({"params": {"f": lambda: 0}}, TypeError, r"params\['f'\]"),
    ],
)
def test_bad_input_names_key_value_and_expectation(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        SeedBundle(**kwargs)


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="expected root_seed, params_digest, replicate"):
        SeedBundle.from_key({"root_seed": 1})
    with pytest.raises(ValueError, match="params_digest='abc'"):
        SeedBundle.from_key({"root_seed": 1, "params_digest": "abc", "replicate": 0})
    with pytest.raises(ValueError, match=r"params_digest='z{64}'"):
        SeedBundle.from_key({"root_seed": 1, "params_digest": "z" * 64, "replicate": 0})
    key = {**SeedBundle(0).key, "path": [-1]}
    with pytest.raises(ValueError, match="path element=-1"):
        SeedBundle.from_key(key)
    with pytest.raises(ValueError, match="n=-1"):
        SeedBundle(0).spawn(-1)
