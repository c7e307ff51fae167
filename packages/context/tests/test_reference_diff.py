"""Differential test: the same program of context operations on crystallize and on assay.

Hypothesis writes programs a crystallize user could write (set keys, read them, record
metrics with tags, log artifacts, pickle, wrap in a LoggingContext) and runs each on
``crystallize.utils.context`` and on ``assay_context``; the outcomes must agree step by step.
Only the deliberate differences of the moving-over page are normalised away: a set comes back
as a frozenset, the snapshot of ``as_dict`` is a dict rather than a ``mappingproxy``, and the
reference's gap (pickling a LoggingContext) is not exercised. Containers must otherwise keep
their kind (a list reads back as a list, a tuple as a tuple, a dict as a dict), compare equal
to what was stored, and serialise to the same JSON.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

crystallize_context = pytest.importorskip("crystallize.utils.context")
crystallize_artifacts = pytest.importorskip("crystallize.datasources.artifacts")
import assay_context  # noqa: E402 - after the skip, so the module is skipped as a whole

KEYS = st.sampled_from(["lr", "seed", "model", "data", "a.b"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.binary(max_size=4),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
        st.frozensets(st.integers(0, 5), max_size=3),
    ),
    max_leaves=6,
)
# Names and values both libraries accept (assay refuses the rest on purpose).
METRIC_NAMES = st.sampled_from(["loss", "val.accuracy", "top-1"])
METRIC_VALUES = st.one_of(
    st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=3), st.booleans()
)
TAGS = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["epoch", "split"]),
        st.one_of(st.integers(0, 3), st.text(max_size=2)),
        max_size=2,
    ),
)
OPERATIONS = st.one_of(
    st.tuples(st.just("add"), KEYS, VALUES),
    st.tuples(st.just("setitem"), KEYS, VALUES),
    st.tuples(st.just("getitem"), KEYS),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("get_default"), KEYS, VALUES),
    st.tuples(st.just("equals_stored"), KEYS),
    st.tuples(st.just("json"), KEYS),
    st.tuples(st.just("json_as_dict")),
    st.tuples(st.just("as_dict")),
    st.tuples(st.just("record"), METRIC_NAMES, METRIC_VALUES, TAGS),
    st.tuples(st.just("metrics_add"), METRIC_NAMES, METRIC_VALUES, TAGS),
    st.tuples(st.just("metric"), METRIC_NAMES),
    st.tuples(st.just("get_tags"), METRIC_NAMES),
    st.tuples(st.just("metrics_as_dict")),
    st.tuples(st.just("artifact"), st.sampled_from(["a.bin", "b.txt"]), st.binary(max_size=3)),
    st.tuples(st.just("artifacts")),
    st.tuples(st.just("clear_artifacts")),
    st.tuples(st.just("pickle")),
    st.tuples(st.just("logging")),
    st.tuples(st.just("reads")),
)


def _plain(value: Any) -> Any:
    """Describe a value by kind and content: a frozen list is a list, a frozen dict a dict."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return ("dict", sorted((repr(k), _plain(v)) for k, v in value.items()))
    if isinstance(value, Mapping):
        return ("mapping", sorted((repr(k), _plain(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", [_plain(v) for v in value])
    if isinstance(value, tuple):
        return ("tuple", [_plain(v) for v in value])
    if isinstance(value, (set, frozenset)):  # a set is stored as a frozenset (on purpose)
        return ("set", sorted(repr(v) for v in value))
    return (type(value).__name__, value)


def _step(mod: ModuleType, state: dict[str, Any], operation: tuple[Any, ...]) -> Any:
    ctx, kind, args = state["ctx"], operation[0], operation[1:]
    logging = isinstance(ctx, mod.LoggingContext)
    if kind in ("add", "setitem"):
        key, value = args
        ctx.add(key, value) if kind == "add" else ctx.__setitem__(key, value)
        state["stored"].setdefault(key, value)
        return None
    if kind == "getitem":
        return _plain(ctx[args[0]])
    if kind == "get":
        return _plain(ctx.get(args[0]))
    if kind == "get_default":
        return _plain(ctx.get(*args))
    if kind == "equals_stored":
        key = args[0]
        return key in state["stored"] and ctx[key] == state["stored"][key]
    if kind == "json":
        return json.dumps(ctx[args[0]], sort_keys=True)
    if kind == "json_as_dict":
        # The reference's snapshot is a mappingproxy, which json refuses: compare its dict.
        return json.dumps(dict(ctx.as_dict()), indent=1, sort_keys=True)
    if kind == "as_dict":
        return _plain(dict(ctx.as_dict()))
    if kind == "record":
        return ctx.record(*args)
    if kind == "metrics_add":
        return ctx.metrics.add(*args)
    if kind == "metric":
        return _plain(ctx.metrics[args[0]])
    if kind == "get_tags":
        return _plain(ctx.metrics.get_tags(args[0]))
    if kind == "metrics_as_dict":
        # The reference lists a metric that was only read, as an empty series (on purpose).
        return _plain({k: v for k, v in ctx.metrics.as_dict().items() if v})
    if kind == "artifact":
        return ctx.artifacts.add(*args)
    if kind == "artifacts":
        return [(r.name, r.data, r.step_name) for r in ctx.artifacts], len(ctx.artifacts)
    if kind == "clear_artifacts":
        return ctx.artifacts.clear()
    if kind == "pickle":
        if logging:
            return None  # the reference's LoggingContext does not unpickle (RecursionError)
        state["ctx"] = pickle.loads(pickle.dumps(ctx))
        return _plain(dict(state["ctx"].as_dict()))
    if kind == "logging":
        if not logging:
            state["ctx"] = mod.LoggingContext(ctx)
        return None
    assert kind == "reads"
    return _plain(dict(ctx.reads)) if logging else None


def _run(mod: ModuleType, initial: dict[str, Any], program: list[Any]) -> list[Any]:
    state = {"ctx": mod.FrozenContext(initial), "stored": dict(initial)}
    outcomes: list[Any] = []
    for operation in program:
        try:
            outcomes.append(("ok", _step(mod, state, operation)))
        except mod.ContextMutationError:
            outcomes.append(("raised", "ContextMutationError"))
        except Exception as error:
            outcomes.append(("raised", type(error).__name__))
    outcomes.append(("final", _final(state["ctx"])))
    return outcomes


def _final(ctx: Any) -> Any:
    """Everything a run leaves behind: keys and values, metric series with tags, artifacts."""
    values = {key: ctx.get(key) for key in ("lr", "seed", "model", "data", "a.b")}
    names = [name for name, series in ctx.metrics.as_dict().items() if series]
    metrics = {name: (ctx.metrics[name], ctx.metrics.get_tags(name)) for name in names}
    artifacts = [(r.name, r.data, r.step_name) for r in ctx.artifacts]
    return _plain(values), _plain(metrics), artifacts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES, max_size=3), st.lists(OPERATIONS, max_size=12))
def test_a_program_has_the_same_outcomes_on_both(
    initial: dict[str, Any], program: list[Any]
) -> None:
    reference = _run(crystallize_context, initial, program)
    ours = _run(assay_context, initial, program)
    for operation, expected, got in zip([*program, "final"], reference, ours, strict=True):
        assert got == expected, f"{operation!r}: crystallize gave {expected!r}, assay {got!r}"


def test_artifact_records_compare_like_the_reference_dataclass() -> None:
    pairs = [
        (crystallize_context.FrozenContext({}), crystallize_artifacts.ArtifactRecord),
        (assay_context.FrozenContext({}), assay_context.ArtifactRecord),
    ]
    for ctx, record_type in pairs:
        ctx.artifacts.add("a.bin", b"x")
        [record] = list(ctx.artifacts)
        assert record == record_type("a.bin", b"x", "")
        assert record != record_type("a.bin", b"y", "")
        with pytest.raises(TypeError, match="unhashable"):
            hash(record)


def test_where_the_reference_fails_or_differs() -> None:
    """Rows of the moving-over page: the reference's behaviour, then assay's."""
    initial = {"lr": 0.1, "epochs": 3}
    ref = crystallize_context.LoggingContext(crystallize_context.FrozenContext(initial))
    ours = assay_context.LoggingContext(assay_context.FrozenContext(initial))
    assert ref["lr"] == ours["lr"] == 0.1
    with pytest.raises(RecursionError):
        pickle.loads(pickle.dumps(ref))  # a LoggingContext cannot go to a worker process
    assert dict(pickle.loads(pickle.dumps(ours)).reads) == {"lr": 0.1}
    ref.as_dict(), ours.as_dict()  # a snapshot of every key: neither counts it as reads
    assert set(ref.reads) == set(ours.reads) == {"lr"}
    assert crystallize_context.FrozenContext({}).logger.name == "crystallize"
    assert assay_context.FrozenContext({}).logger.name == "assay.context"
