"""Configs round-trip through JSON and YAML with the same cache uids."""

from __future__ import annotations

import datetime
import decimal
import gc
import uuid
from pathlib import Path
from typing import Any

import pydantic
import pytest
from assay_steps import Chain, Func, Step
from hypothesis import given, settings
from hypothesis import strategies as st
from steps_testkit import Add, Mult, cached, calls
from store_testkit import step_uids


class Experiment(pydantic.BaseModel):
    pipeline: Step
    name: str = "exp"


def make_config(folder: Path) -> dict[str, Any]:
    return {
        "pipeline": [
            {"type": "Mult", "coeff": 3, "infra": {"backend": "Cached", "folder": str(folder)}},
            {"type": "Add", "x": 0.5, "infra": {"backend": "Cached", "folder": str(folder)}},
        ]
    }


def test_list_becomes_a_chain_and_dicts_dispatch_on_type(folder: Path) -> None:
    exp = Experiment.model_validate(make_config(folder))
    assert isinstance(exp.pipeline, Chain)
    assert isinstance(exp.pipeline[0], Mult)
    assert isinstance(exp.pipeline[1], Add)
    assert exp.pipeline.run(2.0) == 6.5


def test_dict_of_steps_becomes_a_named_chain() -> None:
    exp = Experiment(pipeline={"double": {"type": "Mult"}, "inc": {"type": "Add", "x": 2}})
    assert isinstance(exp.pipeline, Chain)
    assert list(exp.pipeline.steps) == ["double", "inc"]
    assert exp.pipeline.run(1.0) == 4.0


def test_unknown_type_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="type='Nope' is not a registered Step"):
        Experiment(pipeline={"type": "Nope"})


def test_json_round_trip_keeps_uids_and_hits_the_cache(folder: Path) -> None:
    exp = Experiment.model_validate(make_config(folder))
    assert exp.pipeline.run(2.0) == 6.5
    text = exp.model_dump_json()
    again = Experiment.model_validate_json(text)
    assert again == exp or again.model_dump() == exp.model_dump()
    assert step_uids(again.pipeline, 2.0) == step_uids(exp.pipeline, 2.0)
    assert again.pipeline.run(2.0) == 6.5
    assert calls("Mult") == [2.0]  # served from the cache written before the round trip


def test_yaml_round_trip_keeps_uids(folder: Path) -> None:
    yaml = pytest.importorskip("yaml")
    exp = Experiment.model_validate(make_config(folder))
    text = yaml.safe_dump(exp.model_dump(mode="json"))
    again = Experiment.model_validate(yaml.safe_load(text))
    assert step_uids(again.pipeline, 2.0) == step_uids(exp.pipeline, 2.0)
    assert "type: Mult" in text


def test_named_chain_round_trips(folder: Path) -> None:
    chain = Chain(
        steps={"a": Mult(coeff=2), "b": Add(x=3)}, infra={"backend": "Cached", "folder": folder}
    )
    again = Step.model_validate_json(chain.model_dump_json())
    assert isinstance(again, Chain)
    assert list(again.steps) == ["a", "b"]
    assert step_uids(again, 1.0) == step_uids(chain, 1.0)


def test_func_round_trips_through_its_import_path(folder: Path) -> None:
    step = Func(
        function="math.pow", input_param="x", y=2, infra={"backend": "Cached", "folder": folder}
    )
    data = step.model_dump(mode="json")
    assert data["function"] == "math.pow"
    again = Step.model_validate(data)
    assert isinstance(again, Func)
    assert again.run(3.0) == 9.0
    assert again.lookup(3.0).paths.step_uid == step.lookup(3.0).paths.step_uid


def test_default_values_do_not_change_uids(folder: Path) -> None:
    explicit = Mult(coeff=2.0, infra={"backend": "Cached", "folder": folder})
    implicit = Mult(infra={"backend": "Cached", "folder": folder})
    assert explicit.lookup(1.0).paths.step_uid == implicit.lookup(1.0).paths.step_uid


def test_steps_pickle_without_their_runtime_state(folder: Path) -> None:
    import pickle

    step = Mult(infra={"backend": "Cached", "folder": folder})
    step.run(1.0)
    copy = pickle.loads(pickle.dumps(step))
    assert copy == step
    assert copy._runtime.stores == {}
    assert copy.run(1.0) == 2.0
    assert calls("Mult") == [1.0]


def test_a_short_name_shared_by_two_classes_is_refused_and_the_qualified_name_works() -> None:
    def define() -> type[Step]:
        class Twin(Step):
            coeff: float = 1.0

            def _run(self, value: float) -> float:
                return value * self.coeff

        return Twin

    first = define()
    namespace: dict[str, object] = {"Step": Step, "__name__": "other_module"}
    exec(  # the same short name in another module
        "class Twin(Step):\n    def _run(self, value):\n        return -value\n", namespace
    )
    with pytest.raises(ValueError, match=r"type='Twin' is ambiguous.*qualified name"):
        Step.model_validate({"type": "Twin", "coeff": 2})
    qualified = f"{first.__module__}.{first.__qualname__}"
    step = Step.model_validate({"type": qualified, "coeff": 2})
    assert type(step) is first
    assert type(Step.model_validate({"type": "other_module.Twin"})) is namespace["Twin"]


def test_a_class_sharing_its_short_name_still_validates_and_clones_itself() -> None:
    def define(module: str) -> type[Step]:
        namespace: dict[str, object] = {"Step": Step, "__name__": module}
        exec(
            "class Shared(Step):\n"
            "    coeff: float = 1.0\n"
            "    def _run(self, value):\n"
            "        return value * self.coeff\n",
            namespace,
        )
        cls = namespace["Shared"]
        assert isinstance(cls, type)
        return cls

    first, second = define("first_module"), define("second_module")
    step = first(coeff=2)
    clone = step.clone(coeff=3)  # its dump names it "Shared": meant is its own class
    assert type(clone) is first
    assert clone.coeff == 3
    assert type(second.model_validate({"type": "Shared", "coeff": 2})) is second
    with pytest.raises(ValueError, match=r"type='Shared' is ambiguous"):
        Step.model_validate({"type": "Shared", "coeff": 2})  # from the base class it is
    # The dump names the class by its qualified name: it validates back from the base class,
    # and the other class of that short name does not take it for its own.
    assert step.model_dump()["type"] == "first_module.Shared"
    assert type(Step.model_validate(step.model_dump())) is first
    with pytest.raises(ValueError, match=r"type='first_module.Shared' is not a subclass"):
        second.model_validate(step.model_dump())


def test_a_class_nothing_uses_any_more_does_not_make_its_name_ambiguous() -> None:
    namespace: dict[str, object] = {"Step": Step, "__name__": "finished_script"}
    exec("class Mult(Step):\n    def _run(self, value):\n        return value\n", namespace)
    with pytest.raises(ValueError, match="ambiguous"):
        Step.model_validate({"type": "Mult"})
    namespace.clear()
    gc.collect()
    assert type(Step.model_validate({"type": "Mult", "coeff": 2})) is Mult


# ---------------------------------------------------------------- pydantic dump options


def test_exclude_defaults_keeps_only_the_type_and_the_fields_set_to_other_values() -> None:
    assert Mult(coeff=3).model_dump(exclude_defaults=True) == {"type": "Mult", "coeff": 3.0}
    assert Mult().model_dump(exclude_defaults=True) == {"type": "Mult"}
    assert type(Step.model_validate(Mult().model_dump(exclude_defaults=True))) is Mult


def test_exclude_defaults_reaches_the_infra_and_nested_steps_and_keeps_uids(
    folder: Path,
) -> None:
    chain = Chain(
        steps=[Mult(coeff=3, infra=cached(folder)), Add(x=0.5)],
        infra=cached(folder, mode="retry"),
    )
    data = chain.model_dump(exclude_defaults=True)
    assert data == {
        "type": "Chain",
        "infra": {"backend": "Cached", "folder": folder, "mode": "retry"},
        "steps": [
            {"type": "Mult", "coeff": 3.0, "infra": {"backend": "Cached", "folder": folder}},
            {"type": "Add", "x": 0.5},
        ],
    }
    again = Step.model_validate(data)
    assert again.model_dump() == chain.model_dump()
    assert step_uids(again, 2.0) == step_uids(chain, 2.0)
    exp = Experiment(pipeline=Mult(coeff=4), name="exp")
    assert exp.model_dump(exclude_defaults=True) == {"pipeline": {"type": "Mult", "coeff": 4.0}}


def test_exclude_none_leaves_out_none_fields_of_steps_and_backends(folder: Path) -> None:
    assert Add(x=2).model_dump(exclude_none=True) == {"type": "Add", "x": 2.0}
    step = Add(infra={"backend": "Cached"})
    dumped = step.model_dump(exclude_none=True)
    assert "folder" not in dumped["infra"]
    assert dumped["infra"]["backend"] == "Cached"
    assert Step.model_validate(dumped) == step


def test_exclude_unset_keeps_only_the_fields_given(folder: Path) -> None:
    step = Chain(steps=[Mult(coeff=2.0), Add(infra=cached(folder))])
    assert step.model_dump(exclude_unset=True) == {
        "type": "Chain",
        "steps": [
            {"type": "Mult", "coeff": 2.0},
            {"type": "Add", "infra": {"backend": "Cached", "folder": folder}},
        ],
    }


def test_include_and_exclude_select_fields_at_every_level_and_keep_the_type(
    folder: Path,
) -> None:
    step = Mult(coeff=3, calls=7, infra=cached(folder))
    assert step.model_dump(include={"coeff"}) == {"type": "Mult", "coeff": 3.0}
    assert step.model_dump(exclude={"infra", "calls"}) == {"type": "Mult", "coeff": 3.0}
    assert step.model_dump(include={"infra": {"mode"}}) == {
        "type": "Mult",
        "infra": {"backend": "Cached", "mode": "cached"},
    }
    chain = Chain(steps=[step, Add(x=2)])
    assert chain.model_dump(exclude={"infra": True, "steps": {"__all__": {"infra", "calls"}}}) == {
        "type": "Chain",
        "steps": [{"type": "Mult", "coeff": 3.0}, {"type": "Add", "x": 2.0}],
    }
    assert chain.model_dump(include={"steps": {1: {"x"}}}) == {
        "type": "Chain",
        "steps": [{"type": "Add", "x": 2.0}],
    }


def test_dump_options_apply_to_func_and_json_dumps(folder: Path) -> None:
    step = Func(function="math.pow", y=2, input_param="x")
    assert step.model_dump(exclude_defaults=True) == {
        "type": "Func",
        "function": "math.pow",
        "input_param": "x",
        "y": 2,
    }
    chain = Chain(steps=[step, Mult(coeff=5)], infra=cached(folder))
    text = chain.model_dump_json(exclude_defaults=True)
    assert '"calls"' not in text
    assert '"keep_in_ram"' not in text
    again = Step.model_validate_json(text)
    assert step_uids(again, 3.0) == step_uids(chain, 3.0)
    assert again.run(3.0) == 45.0


@settings(max_examples=60, deadline=None)
@given(
    coeff=st.floats(allow_nan=False, allow_infinity=False),
    x=st.floats(allow_nan=False, allow_infinity=False),
    options=st.fixed_dictionaries(
        {
            "exclude_defaults": st.booleans(),
            "exclude_none": st.booleans(),
            "exclude_unset": st.booleans(),
        }
    ),
    mode=st.sampled_from(["python", "json"]),
)
def test_any_dump_options_validate_back_to_an_equal_step_with_the_same_uid(
    coeff: float, x: float, options: dict[str, bool], mode: str
) -> None:
    chain = Chain(steps=[Mult(coeff=coeff), Add(x=x)], infra={"backend": "Cached"})
    dumped = chain.model_dump(mode=mode, **options)
    assert dumped["type"] == "Chain"
    assert dumped["infra"]["backend"] == "Cached"
    again = Step.model_validate(dumped)
    assert again == chain
    assert again._step_uid(()) == chain._step_uid(())


def test_a_config_dumped_by_exca_validates_with_capture_logs_off(folder: Path) -> None:
    # exca writes capture_logs=False into every dump of a Cached infra: such a config loads,
    # while capture_logs=True (logs captured to files, which assay does not do) is refused.
    infra = {"backend": "Cached", "folder": folder, "mode": "cached", "keep_in_ram": False}
    step = Step.model_validate(
        {"type": "Mult", "coeff": 3, "infra": {**infra, "capture_logs": False}}
    )
    assert step.run(2.0) == 6.0
    assert "capture_logs" not in step.model_dump()["infra"]
    with pytest.raises(pydantic.ValidationError, match="capture_logs=True"):
        Step.model_validate({"type": "Mult", "infra": {**infra, "capture_logs": True}})


class Dated(Step):
    """A step configured by a date, a duration, an amount and an id (as exca users write)."""

    start: datetime.date
    window: datetime.timedelta = datetime.timedelta(hours=1)
    budget: decimal.Decimal = decimal.Decimal("0.1")
    ident: uuid.UUID | None = None

    def _run(self, value: int) -> str:
        return f"{self.start}+{self.window}x{value}"


def test_date_decimal_and_uuid_fields_cache_and_round_trip(folder: Path) -> None:
    ident = uuid.UUID(int=7)
    step = Dated(start=datetime.date(2026, 1, 2), ident=ident, infra={"folder": folder})
    assert list(step.run_many([1])) == ["2026-01-02+1:00:00x1"]
    # through JSON and back: the same step, so the same folder and a cache hit
    again = Step.model_validate_json(step.model_dump_json())
    assert isinstance(again, Dated)
    assert again.ident == ident
    assert step_uids(again, 1) == step_uids(step, 1)
    assert again.lookup(1).cached()
    # another date is another configuration
    later = step.clone(start=datetime.date(2026, 1, 3))
    assert step_uids(later, 1) != step_uids(step, 1)


def test_pickles_naming_the_former_step_module_still_load(folder: Path) -> None:
    # Chain, NOVALUE and the runtime state were defined in assay_steps._step: a pickle written
    # before the module was split names them there, and still loads.
    import pickle

    from assay_steps._state import NOVALUE

    chain = Chain(steps=[Add(x=1), Mult(coeff=2)], infra={"backend": "Cached", "folder": folder})
    data = pickle.dumps((chain, NOVALUE), protocol=0)
    for module in (b"assay_steps._chain", b"assay_steps._state"):
        data = data.replace(module + b"\n", b"assay_steps._step\n")
    assert b"cassay_steps._step\nChain\n" in data
    assert b"cassay_steps._step\n_Runtime\n" in data
    loaded, novalue = pickle.loads(data)
    assert type(loaded) is Chain
    assert loaded == chain
    assert loaded._step_uid(()) == chain._step_uid(())
    assert novalue is NOVALUE
    assert loaded.run(3) == chain.run(3) == 8
