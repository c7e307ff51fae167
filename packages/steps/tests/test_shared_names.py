"""Configs of Step classes whose short name another live class shares still round-trip."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
from assay_steps import Cached, Chain, Step
from hypothesis import given, settings
from hypothesis import strategies as st
from steps_testkit import CALLS, calls
from store_testkit import step_uids


def _scale(self: Any, value: float) -> float:
    CALLS.append(("scale", value))
    return float(value * self.factor)


def _shift(self: Any, value: float) -> float:
    CALLS.append(("shift", value))
    return float(value + self.offset)


def make_step(short: str, module: str, kind: str = "scale") -> type[Step]:
    """A Step class named ``short`` in ``module``: a scaling or a shifting one."""
    field, default, run = ("factor", 2.0, _scale) if kind == "scale" else ("offset", 1.0, _shift)
    namespace = {
        "__module__": module,
        "__qualname__": short,
        "__annotations__": {field: float},
        field: default,
        "_run": run,
    }
    return type(short, (Step,), namespace)


def make_twins(short: str = "Rescale") -> tuple[type[Step], type[Step]]:
    """Two Step classes named ``short`` in two modules, as two libraries would define them."""
    return make_step(short, "lib_scale"), make_step(short, "lib_shift", kind="shift")


@pytest.fixture
def twins() -> tuple[type[Step], type[Step]]:
    return make_twins()


class Wrapper(Step):
    """A step with a Step-typed field."""

    inner: Step

    def _run(self, value: float) -> float:
        return float(self.inner.run(value))


def test_a_chain_of_two_classes_sharing_a_short_name_round_trips(
    twins: tuple[type[Step], type[Step]], folder: Path
) -> None:
    scale, shift = twins
    chain = Chain(steps=[scale(factor=3.0), shift(offset=1.0)], infra=Cached(folder=folder))
    again = Chain.model_validate(chain.model_dump())
    assert again == chain
    assert [type(step) for step in again.steps] == [scale, shift]
    assert step_uids(again, 2.0) == step_uids(chain, 2.0)
    assert again.run(2.0) == chain.run(2.0) == 7.0
    from_json = Step.model_validate_json(chain.model_dump_json())
    assert from_json == chain
    assert step_uids(from_json, 2.0) == step_uids(chain, 2.0)


def test_a_step_field_holding_a_class_sharing_its_short_name_round_trips(
    twins: tuple[type[Step], type[Step]], folder: Path
) -> None:
    scale, _ = twins
    wrapper = Wrapper(inner=scale(factor=5.0), infra=Cached(folder=folder))
    again = Wrapper.model_validate(wrapper.model_dump())
    assert again == wrapper
    assert type(again.inner) is scale
    assert again.lookup(1.5).paths.step_uid == wrapper.lookup(1.5).paths.step_uid
    assert again.run(1.5) == wrapper.run(1.5) == 7.5


def test_a_cached_chain_of_twins_runs_writes_its_config_and_hits_its_cache(
    twins: tuple[type[Step], type[Step]], tmp_path: Path
) -> None:
    scale, shift = twins
    named = Chain(
        steps={
            # Each step has its own cache, in the folder the chain gives them.
            "scale": scale(factor=3.0, infra=Cached()),
            "shift": shift(offset=1.0, infra=Cached()),
        },
        infra=Cached(folder=tmp_path),
    )
    assert named.run(2.0) == 7.0
    assert calls("scale") == [2.0]
    assert calls("shift") == [6.0]
    # The config written next to the cache names both classes so that it validates back.
    written = json.loads((named.lookup(2.0).paths.step_folder / "config.json").read_text())
    rebuilt = Chain(steps=[Step.model_validate(step) for step in written["steps"]])
    assert [type(step) for step in rebuilt.steps] == [scale, shift]
    # A copy made through dump + validate, and a clone with an update, use the same cache.
    copy = Chain.model_validate(named.model_dump())
    assert copy.lookup(2.0).status == "success"
    assert copy.run(2.0) == 7.0
    assert named.clone().run(2.0) == 7.0
    assert calls("scale") == [2.0]  # cache hits: nothing recomputed
    assert calls("shift") == [6.0]
    changed = named.clone(**{"steps.shift.offset": 10.0})
    assert type(changed["shift"]) is shift
    assert changed.run(2.0) == 16.0
    assert calls("scale") == [2.0]  # the first step's entry is shared with the original chain


def test_the_uid_and_folder_of_a_step_do_not_depend_on_a_class_sharing_its_short_name(
    folder: Path,
) -> None:
    lonely = make_step("Lonely", "lib_one")
    step = lonely(factor=3.0, infra=Cached(folder=folder))
    assert step.run(2.0) == 6.0
    before = step.lookup(2.0).paths.step_uid
    short_dump = step.model_dump(mode="json")
    assert short_dump["type"] == "Lonely"  # a unique short name is dumped as before
    from_short = Step.model_validate(short_dump).lookup(2.0).paths.step_uid

    twin = make_step("Lonely", "lib_two", kind="shift")
    qualified_dump = step.model_dump(mode="json")
    assert qualified_dump["type"] == "lib_one.Lonely"
    again = Step.model_validate(qualified_dump)
    assert type(again) is lonely
    uids = {before, from_short, step.lookup(2.0).paths.step_uid, again.lookup(2.0).paths.step_uid}
    assert len(uids) == 1
    assert before.startswith("Lonely-")  # the cache folder keeps the short name
    assert again.run(2.0) == 6.0
    assert calls("scale") == [2.0]  # the entry written before the twin existed is a hit

    del twin
    gc.collect()
    assert step.model_dump()["type"] == "Lonely"  # once the twin is gone, the short name again


def test_classes_of_main_and_of_functions_dump_a_name_that_validates_back() -> None:
    def define() -> type[Step]:
        class LocallyDefined(Step):
            factor: float = 2.0

            def _run(self, value: float) -> float:
                return value * self.factor

        return LocallyDefined

    local = define()
    assert "<locals>" in local.__qualname__
    main_only = make_step("DefinedInMain", "__main__")
    for cls in (local, main_only):
        dumped = cls(factor=4.0).model_dump()
        assert dumped["type"] == cls.__name__  # unique: the short name, as before
        assert Step.model_validate(dumped) == cls(factor=4.0)

    main_twin = make_step("LocallyDefined", "__main__")
    for cls in (local, main_twin):
        dumped = cls(factor=4.0).model_dump()
        assert dumped["type"] == f"{cls.__module__}.{cls.__qualname__}"
        again = Step.model_validate(dumped)
        assert type(again) is cls
        assert again.run(1.0) == 4.0


@settings(max_examples=30, deadline=None)
@given(
    factor=st.floats(allow_nan=False, allow_infinity=False, width=32),
    offset=st.floats(allow_nan=False, allow_infinity=False, width=32),
    value=st.floats(min_value=-1e6, max_value=1e6, width=32),
)
def test_chains_of_twins_round_trip_through_json(
    factor: float, offset: float, value: float
) -> None:
    scale, shift = make_twins("JsonTwin")
    chain = Chain(steps=[shift(offset=offset), scale(factor=factor), shift(offset=offset)])
    again = Step.model_validate_json(chain.model_dump_json())
    assert again == chain
    assert again.model_dump() == chain.model_dump()
    assert again.run(value) == chain.run(value)


def test_classes_sharing_a_short_name_never_share_cache_entries(tmp_path: Path) -> None:
    # Same short name, same fields at the same values, one cache folder: still two steps.
    negate = {"__module__": "lib_negate", "__qualname__": "Twin", "_run": lambda s, v: -v}
    keep = {"__module__": "lib_keep", "__qualname__": "Twin", "_run": lambda s, v: v}
    first = type("Twin", (Step,), keep)(infra=Cached(folder=tmp_path))
    second = type("Twin", (Step,), negate)(infra=Cached(folder=tmp_path))
    assert first.run(3) == 3
    assert second.run(3) == -3
    assert first.lookup(3).uid == second.lookup(3).uid  # same input...
    assert first.run(3) == 3  # ...but separate entries, each step's own
