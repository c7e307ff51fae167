"""Promises that span layers: scopes, seeds and contexts reach the items on every backend."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from assay_backends import ProcessPool
from assay_context import ContextMutationError, FrozenContext
from assay_ops import OperationWrapper, SeedBundle, import_operation
from assay_scope import auto_param, param_scope
from assay_steps import Step
from hypothesis import given, settings
from hypothesis import strategies as st

from assay import Experiment, grid


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_step_from_a_script_calling_auto_param_runs_on_a_process_pool(
    tmp_path: Path, start_method: Any
) -> None:
    # Defined inside the test, so they travel by value, as a script's or a notebook's do.
    @auto_param("model")
    def width(w: int = 8) -> int:
        return w

    class Width(Step):
        scale: int = 1

        def _run(self, value: int) -> int:
            with param_scope(**{"model.w": value}):
                return width() * self.scale

    infra = ProcessPool(folder=tmp_path, max_jobs=2, start_method=start_method, progress=False)
    assert list(Width(scale=10, infra=infra).run_many([1, 2, 3])) == [10, 20, 30]


# ---------------------------------------------------------------- one operation, every backend

OPERATION = """
from assay_ops import operation
from assay_scope import auto_param, param_scope


@auto_param("model")
def build(width=8, depth=2):
    return width, depth


@operation
def probe(params, seeds, context, capture):
    width, depth = build()
    capture.metric("width", width)
    capture.metric("depth", depth)
    capture.metric("draw", float(seeds.numpy().random()))
    capture.metric("named", float(seeds.numpy("init").random()))
    capture.metric("integer", seeds.integer(bits=64))
    capture.metric("child", float(seeds.spawn(2)[1].numpy().random()))
    capture.metric("offset", context["offset"])
"""

BACKENDS: dict[str, dict[str, Any] | None] = {
    "inline": None,
    "Cached": {"backend": "Cached"},
    "ThreadPool": {"backend": "ThreadPool", "max_jobs": 2},
    "ProcessPool-fork": {"backend": "ProcessPool", "max_jobs": 2, "start_method": "fork"},
    "ProcessPool-spawn": {"backend": "ProcessPool", "max_jobs": 2, "start_method": "spawn"},
    "LocalProcess": {"backend": "LocalProcess", "max_jobs": 2},
    "SubmititDebug": {"backend": "SubmititDebug"},
}
SLOW = {"ProcessPool-spawn", "LocalProcess"}


@pytest.fixture
def probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module holding the ``probe`` operation, for workers of any kind."""
    folder = tmp_path / "code"
    folder.mkdir()
    name = f"cross_layer_ops_{tmp_path.name.replace('-', '_')}"
    (folder / f"{name}.py").write_text(OPERATION)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), *sys.path]))
    return name


def _direct(ref: str, seed: int, params: dict[str, Any], replicate: int) -> dict[str, Any]:
    """Metrics of the run made by calling the operation directly, as a user would."""
    operation = import_operation(ref)
    with param_scope(**{"model.depth": 5}):
        record = operation.run({"offset": 3}, params, SeedBundle(seed, params, replicate=replicate))
    assert record.status == "success", record.error
    return record.metrics


@pytest.mark.parametrize(
    "backend",
    [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in BACKENDS],
)
def test_an_experiment_gives_the_metrics_of_direct_runs_on_every_backend(
    tmp_path: Path, probe_module: str, backend: str
) -> None:
    ref = f"{probe_module}:probe"
    experiment = Experiment(
        "probe",
        ref,
        grid(**{"model.width": [16, 32]}),
        replicates=2,
        seed=2**40 + 1,
        context={"offset": 3},
        scope={"model.depth": 5},
        backend=BACKENDS[backend],
        folder=tmp_path / "runs",
        progress=False,
    )
    records = experiment.run().records()
    assert len(records) == 4
    for record in records:
        assert record.status == "success", record.error
        expected = _direct(ref, 2**40 + 1, record.params, record.replicate)
        assert record.metrics == expected
        assert record.metric("width") == record.params["model.width"]
        assert record.metric("depth") == 5  # the experiment's scope reaches every backend


# ---------------------------------------------------------------- properties (no processes)

_KEYS = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=5)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=6,
)
_PARAMS = st.dictionaries(_KEYS, _VALUES, max_size=4)


@settings(max_examples=30, deadline=None)
@given(params=_PARAMS, replicate=st.integers(0, 2**32 - 1), root=st.integers(0, 2**128 - 1))
def test_a_seed_bundle_gives_the_same_streams_after_pickling_and_from_its_key(
    params: dict[str, Any], replicate: int, root: int
) -> None:
    bundle = SeedBundle(root, params, replicate=replicate)
    copies = [pickle.loads(pickle.dumps(bundle)), SeedBundle.from_key(bundle.key)]
    for copy in copies:
        assert copy == bundle
        assert copy.numpy().random(3).tolist() == bundle.numpy().random(3).tolist()
        assert copy.integer("x", bits=64) == bundle.integer("x", bits=64)
        assert [c.key for c in copy.spawn(3)] == [c.key for c in bundle.spawn(3)]
        assert copy.spawn(2)[1].python().random() == bundle.spawn(2)[1].python().random()


@settings(max_examples=30, deadline=None)
@given(params=_PARAMS, outer=st.dictionaries(_KEYS, st.integers(), max_size=3))
def test_a_run_sees_its_params_in_the_scope_and_leaves_the_callers_scope_as_it_was(
    params: dict[str, Any], outer: dict[str, int]
) -> None:
    seen: dict[str, Any] = {}

    def look(capture: Any) -> None:
        seen.update(param_scope().storage().storage())

    op = OperationWrapper(look)
    with param_scope(**outer) as caller:
        before = dict(caller)
        record = op.run(params=params)
        assert dict(param_scope()) == before
    assert record.status == "success", record.error
    expected = {**dict(param_scope(**outer)), **dict(param_scope.empty(**params))}
    assert seen == expected


# NaN aside: a context compares its values with ==, under which a copied NaN is unequal.
_NO_NAN = st.recursive(
    _SCALARS.filter(lambda value: value == value),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=30, deadline=None)
@given(values=st.dictionaries(_KEYS, _NO_NAN, max_size=4))
def test_a_frozen_context_sent_to_a_worker_stays_frozen_and_equal(values: dict[str, Any]) -> None:
    context = FrozenContext(values)
    copy = pickle.loads(pickle.dumps(context))
    assert copy == context
    for key in values:
        with pytest.raises(ContextMutationError):
            copy[key] = "changed"
    assert copy == context
