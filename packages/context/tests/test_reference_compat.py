"""Code written for crystallize.utils.context runs unchanged on assay_context.

Each test runs against assay_context, and against crystallize-ml's module too when it is
installed, so the shared contract is checked on both sides.
"""

from __future__ import annotations

import importlib
import json
import pickle
from types import ModuleType

import pytest


@pytest.fixture(params=["assay_context", "crystallize.utils.context"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    if request.param != "assay_context":
        pytest.importorskip("crystallize")
    return importlib.import_module(request.param)


def test_set_once_contract(mod: ModuleType) -> None:
    ctx = mod.FrozenContext({"lr": 0.1})
    ctx.add("seed", 1)
    ctx["name"] = "run"
    assert (ctx["lr"], ctx.get("seed"), ctx.get("none"), ctx.get("none", 2)) == (0.1, 1, None, 2)
    with pytest.raises(mod.ContextMutationError, match="lr"):
        ctx["lr"] = 0.2
    with pytest.raises(mod.ContextMutationError, match="seed"):
        ctx.add("seed", 2)
    assert dict(ctx.as_dict()) == {"lr": 0.1, "seed": 1, "name": "run"}
    with pytest.raises(TypeError):
        ctx.as_dict()["x"] = 1


def test_metrics_contract(mod: ModuleType) -> None:
    ctx = mod.FrozenContext({})
    ctx.record("loss", 0.9)
    ctx.metrics.add("loss", 0.5, {"epoch": 2})
    assert ctx.metrics.as_dict()["loss"] == (0.9, 0.5)
    assert ctx.metrics["loss"] == (0.9, 0.5)
    assert ctx.metrics.get_tags("loss") == ({}, {"epoch": 2})


def test_artifacts_contract(mod: ModuleType) -> None:
    ctx = mod.FrozenContext({})
    ctx.artifacts.add("a.bin", b"data")
    assert len(ctx.artifacts) == 1
    [record] = list(ctx.artifacts)
    assert (record.name, record.data, record.step_name) == ("a.bin", b"data", "")
    with pytest.raises(mod.ContextMutationError, match=r"a\.bin"):
        ctx.artifacts.add("a.bin", b"other")
    ctx.artifacts.clear()
    assert len(ctx.artifacts) == 0


def test_logging_context_contract(mod: ModuleType) -> None:
    inner = mod.FrozenContext({"a": 1, "b": 2})
    ctx = mod.LoggingContext(inner)
    assert ctx["a"] == 1
    assert ctx.get("b") == 2
    assert ctx.get("zzz") is None
    assert set(ctx.reads) == {"a", "b"}
    assert ctx.reads["a"] == 1
    ctx.add("c", 3)
    assert inner["c"] == 3
    assert ctx.metrics is inner.metrics
    assert ctx.artifacts is inner.artifacts
    assert dict(ctx.as_dict()) == {"a": 1, "b": 2, "c": 3}
    assert set(ctx.reads) == {"a", "b"}  # a snapshot reads no key


def test_stored_containers_read_back_equal_and_serialisable(mod: ModuleType) -> None:
    ctx = mod.FrozenContext({"cfg": {"x": [1, 2], "opt": {"betas": [0.9, 0.99]}}})
    ctx.add("xs", [1, [2]])
    assert ctx["cfg"] == {"x": [1, 2], "opt": {"betas": [0.9, 0.99]}}
    assert ctx.get("xs") == [1, [2]]
    assert isinstance(ctx["cfg"], dict)
    assert isinstance(ctx["cfg"]["x"], list)
    assert json.dumps(ctx["cfg"], indent=2) == json.dumps(
        {"x": [1, 2], "opt": {"betas": [0.9, 0.99]}}, indent=2
    )
    assert json.loads(json.dumps(dict(ctx.as_dict()))) == {
        "cfg": {"x": [1, 2], "opt": {"betas": [0.9, 0.99]}},
        "xs": [1, [2]],
    }


def test_get_tags_gives_dicts(mod: ModuleType) -> None:
    ctx = mod.FrozenContext({})
    ctx.record("loss", 0.5, tags={"epoch": 1})
    ctx.record("loss", 0.4)
    tags = ctx.metrics.get_tags("loss")
    assert type(tags) is tuple
    assert [type(t) for t in tags] == [dict, dict]
    assert tags == ({"epoch": 1}, {})


def test_where_assay_differs_on_purpose() -> None:
    """The reference's gaps, each fixed in assay (see the package README)."""
    crystallize = pytest.importorskip("crystallize.utils.context")
    import assay_context

    ref, ours = crystallize.FrozenContext({"a": 1}), assay_context.FrozenContext({"a": 1})
    with pytest.raises(KeyError):
        "a" in ref  # noqa: B015 - the reference has no __contains__ or __iter__
    assert "a" in ours
    ref.metrics["never"], ours.metrics["never"]  # reading an unknown metric...
    assert "never" in ref.metrics.as_dict()  # ...creates it in the reference, not in assay
    assert "never" not in ours.metrics.as_dict()
    cfg = {"layers": [1]}
    ref["cfg"], ours["cfg"] = cfg, cfg
    cfg["layers"].append(2)  # the reference keeps the caller's object on add
    assert ref["cfg"] == {"layers": [1, 2]}
    assert ours["cfg"] == {"layers": [1]}
    with pytest.raises(TypeError, match="mappingproxy"):
        pickle.dumps(ref.as_dict())
    assert pickle.loads(pickle.dumps(ours.as_dict())) == {"a": 1, "cfg": {"layers": [1]}}
    with pytest.raises(TypeError, match="mappingproxy"):
        json.dumps(ref.as_dict())  # the snapshot itself is not serialisable in the reference
    assert json.loads(json.dumps(ours.as_dict())) == {"a": 1, "cfg": {"layers": [1]}}
    with pytest.raises(TypeError, match="read-only"):
        ours["cfg"]["layers"].append(2)  # a reader cannot change what later readers see
    ref["cfg"]["layers"].append(3)  # the reference hands out a deep copy to change
    assert ref["cfg"] == {"layers": [1, 2]}
