"""Parity with exca 0.6 (``exca.steps``): modes in chains, resolution, configuration.

Each test pins a behaviour of the reference that assay follows; where assay differs on
purpose, ``docs/moving-over/exca.md`` says so and the test says why.
"""

from __future__ import annotations

import gc
import itertools
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from assay_steps import BatchProtocolError, Cached, Chain, Step
from steps_testkit import CALLS, Add, Fail, Mult, cached, calls

COUNTER = itertools.count()


class Stamp(Step):
    """Returns its input plus a fresh number on every computation: a recomputation shows."""

    def _run(self, value: float = 0.0) -> float:
        CALLS.append(("Stamp", value))
        return value + next(COUNTER)


class Faulty(Step):
    """Fails on every input while ``failing`` is set (excluded from the uid)."""

    failing: bool = False

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["failing"]

    def _run(self, value: float = 0.0) -> float:
        CALLS.append(("Faulty", value))
        if self.failing:
            raise ValueError(f"faulty failure on {value}")
        return value + 1


# ---------------------------------------------------------------- force and retry in chains


def test_force_on_a_step_of_a_cached_chain_recomputes_it_and_the_steps_after(
    folder: Path,
) -> None:
    chain = Chain(
        steps=[Stamp(infra=Cached()), Mult(coeff=10, infra=Cached()), Stamp(infra=Cached())],
        infra=cached(folder),
    )
    first = chain.run(1.0)
    stamped = calls("Mult")  # the result of the first step
    CALLS.clear()
    forced = chain.clone({"steps.1.infra.mode": "force"})
    second = forced.run(1.0)
    assert second != first
    assert calls("Mult") == stamped  # the forced step ran, from the cached result before it
    assert len(calls("Stamp")) == 1  # the step after it too; the step before it did not
    CALLS.clear()
    assert forced.run(1.0) == second  # once per instance
    assert CALLS == []


def test_force_on_a_step_of_a_chain_with_only_a_chain_cache(folder: Path) -> None:
    chain = Chain(steps=[Stamp(infra=Cached()), Mult(coeff=10)], infra=cached(folder))
    first = chain.run(1.0)
    forced = chain.clone({"steps.0.infra.mode": "force"})
    second = forced.run(1.0)
    assert second != first
    assert forced.run(1.0) == second


def test_force_reaches_a_step_two_levels_down(folder: Path) -> None:
    inner = Chain(steps=[Stamp(infra=Cached()), Mult(coeff=10)], infra=cached(folder))
    outer = Chain(steps=[inner, Add(x=1)], infra=cached(folder))
    first = outer.run(1.0)
    forced = outer.clone({"steps.0.steps.0.infra.mode": "force"})
    second = forced.run(1.0)
    assert second != first
    CALLS.clear()
    assert forced.run(1.0) == second
    assert CALLS == []


def test_force_before_a_nested_chain_recomputes_the_nested_chain(folder: Path) -> None:
    inner = Chain(steps=[Mult(coeff=10), Stamp(infra=Cached())], infra=cached(folder))
    outer = Chain(
        steps=[Stamp(infra=Cached()), Mult(coeff=2), inner, Add(x=1)], infra=cached(folder)
    )
    first = outer.run(1.0)
    second = outer.clone({"steps.0.infra.mode": "force"}).run(1.0)
    assert second != first
    third = outer.clone({"steps.2.infra.mode": "force"}).run(1.0)
    assert third != second


def test_retry_on_a_step_of_a_cached_chain_recomputes_its_cached_error(folder: Path) -> None:
    def chain(**flaky: Any) -> Chain:
        step = Faulty(**{"infra": Cached(), **flaky})
        return Chain(steps=[step, Mult(coeff=10)], infra=cached(folder))

    with pytest.raises(ValueError, match="faulty failure"):
        chain(failing=True).run(1.0)
    with pytest.raises(ValueError, match="faulty failure"):
        chain().run(1.0)  # the cached error, as in exca
    assert chain(infra={"backend": "Cached", "mode": "retry"}).run(1.0) == 20.0


def test_retry_reaches_a_step_two_levels_down(folder: Path) -> None:
    def nested(**flaky: Any) -> Chain:
        child = Chain(steps=[Faulty(**flaky), Mult(coeff=10)], infra=cached(folder))
        return Chain(steps=[child, Add(x=2)], infra=cached(folder))

    with pytest.raises(ValueError, match="faulty failure"):
        nested(failing=True, infra=cached(folder)).run(0.0)
    with pytest.raises(ValueError, match="faulty failure"):
        nested(infra=cached(folder)).run(0.0)
    assert nested(infra=cached(folder, mode="retry")).run(0.0) == 12.0  # (0 + 1) * 10 + 2


# ---------------------------------------------------------------- read-only with force


@pytest.mark.parametrize(
    ("chain_mode", "step_mode"), [("read-only", "force"), ("force", "read-only")]
)
def test_read_only_and_force_in_one_chain_are_rejected(
    folder: Path, chain_mode: str, step_mode: str
) -> None:
    def make(chain: str, step: str) -> Chain:
        return Chain(
            steps=[Stamp(infra=Cached(mode=step)), Mult()], infra=cached(folder, mode=chain)
        )

    make("cached", "cached").run(1.0)  # a warm cache: the stale value is at hand
    CALLS.clear()
    with pytest.raises(ValueError, match=r"read-only.*force|force.*read-only"):
        make(chain_mode, step_mode).run(1.0)
    assert CALLS == []


def test_read_only_after_force_in_a_chain_is_rejected(folder: Path) -> None:
    chain = Chain(
        steps=[
            Stamp(infra=cached(folder, mode="force")),
            Mult(infra=cached(folder, mode="read-only")),
        ]
    )
    with pytest.raises(ValueError, match=r"read-only.*force|force.*read-only"):
        chain.run(1.0)
    assert CALLS == []


def test_read_only_before_force_in_a_chain_is_allowed(folder: Path) -> None:
    # As in exca: read-only concerns its own step only.
    Chain(steps=[Stamp(infra=cached(folder)), Mult(infra=cached(folder))]).run(1.0)
    chain = Chain(
        steps=[
            Stamp(infra=cached(folder, mode="read-only")),
            Mult(infra=cached(folder, mode="force")),
        ]
    )
    chain.run(1.0)
    assert len(calls("Mult")) == 2  # computed, then forced
    assert len(calls("Stamp")) == 1  # read back in read-only mode


# ---------------------------------------------------------------- _resolve_step


def test_a_force_from_resolve_step_recomputes_once_per_instance(folder: Path) -> None:
    class ResolvesForced(Step):
        def _resolve_step(self) -> Step:
            return Stamp(infra=cached(folder, mode="force"))

    fresh = ResolvesForced().run()
    step = ResolvesForced()
    outs = [step.run() for _ in range(3)]
    assert outs[0] != fresh  # a new instance forces again
    assert outs[0] == outs[1] == outs[2]  # the same instance forces once
    assert len(calls("Stamp")) == 2


def test_a_resolution_follows_a_changed_configuration(folder: Path) -> None:
    class Scaled(Step):
        coeff: float = 2.0

        def _resolve_step(self) -> Step:
            return Mult(coeff=self.coeff, infra=cached(folder))

    step = Scaled()
    assert step.run(1.0) == 2.0
    step.coeff = 3.0  # assay keys each run by the configuration of the moment
    assert step.run(1.0) == 3.0


def test_resolve_step_returning_a_chain_that_contains_the_step_is_a_clear_error() -> None:
    class SelfRef(Step):
        def _run(self) -> int:
            return 1

        def _resolve_step(self) -> Step:
            return Chain(steps=[self, Add(x=1)])

    with pytest.raises(RuntimeError, match=r"SelfRef\._resolve_step returned a step containing"):
        SelfRef().run()


# ---------------------------------------------------------------- folders


class Options(pydantic.BaseModel):
    step: Step


class Held(Step):
    options: Options

    def _resolve_step(self) -> Step:
        return self.options.step


def test_a_chain_folder_reaches_a_step_held_in_a_plain_pydantic_field(folder: Path) -> None:
    held = Held(options=Options(step=Add(x=3, infra=Cached())))
    chain = Chain(
        steps=[Chain(steps=[Add(x=1, infra=Cached())]), Mult(infra=Cached()), held],
        infra=cached(folder),
    )
    assert chain.run(5.0) == 15.0  # (5 + 1) * 2 + 3
    assert held.options.step.infra is not None
    assert held.options.step.infra.folder == folder


# ---------------------------------------------------------------- ambiguous configurations


def test_clone_refuses_two_dicts() -> None:
    with pytest.raises(ValueError, match="one dict"):
        Mult().clone({"coeff": 2}, {"coeff": 3})


def test_clone_refuses_a_key_given_both_in_the_dict_and_as_a_keyword() -> None:
    assert Mult().clone({"coeff": 2}, calls=1).coeff == 2  # distinct keys: both apply
    with pytest.raises(ValueError, match="'coeff'"):
        Mult().clone({"coeff": 2}, coeff=3)


class Variant(Step):
    """A pure generator whose ``variant`` is its item (as exca's colocation of variants)."""

    variant: str = "a"

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["variant"]

    def item_uid(self, value: Any) -> str | None:
        return self.variant

    def _run(self) -> str:
        return f"result-for-{self.variant}"


class OptionalInput(Variant):
    def _run(self, value: float = 0) -> float:  # type: ignore[override]
        return value + 1


def test_item_uid_for_no_input_needs_a_pure_generator(folder: Path) -> None:
    assert Variant(variant="b", infra=cached(folder)).run() == "result-for-b"
    with pytest.raises(TypeError, match="accepts an optional input"):
        OptionalInput(infra=cached(folder)).run()


# ---------------------------------------------------------------- discriminator_key


class Layer(Step, discriminator_key="name"):
    """A hierarchy of steps whose configs name their class under "name"."""


class Tripler(Layer):
    def _run(self, value: float) -> float:
        return value * 3


class Shifter(Layer):
    offset: float = 1.0

    def _run(self, value: float) -> float:
        return value + self.offset


class LayerChain(Chain, Layer):
    steps: list[Layer] | OrderedDict[str, Layer]  # type: ignore[assignment]


class LayerHolder(pydantic.BaseModel):
    block: Layer


def test_a_step_hierarchy_names_its_classes_by_its_own_discriminator_key(folder: Path) -> None:
    pipeline = LayerHolder.model_validate({"block": {"name": "Shifter", "offset": 2}})
    assert isinstance(pipeline.block, Shifter)
    assert pipeline.model_dump() == {"block": {"name": "Shifter", "infra": None, "offset": 2.0}}
    assert LayerHolder.model_validate(pipeline.model_dump()) == pipeline
    assert Layer.model_validate({"name": "Tripler"}).run(2.0) == 6.0
    with pytest.raises(ValueError, match="name='Nope' is not a registered Step"):
        LayerHolder.model_validate({"block": {"name": "Nope"}})


def test_a_list_becomes_the_chain_class_of_its_hierarchy(folder: Path) -> None:
    pipeline = LayerHolder.model_validate({"block": [{"name": "Tripler"}, {"name": "Shifter"}]})
    assert type(pipeline.block) is LayerChain
    assert pipeline.block.run(1.0) == 4.0
    dumped = pipeline.block.model_dump()
    assert dumped["name"] == "LayerChain"
    assert dumped["steps"][0]["name"] == "Tripler"
    assert type(Layer.model_validate(dumped)) is LayerChain
    assert type(pipeline.block[:1]) is LayerChain
    # elsewhere, lists still become plain chains
    assert type(Options(step=[Add(), Mult()]).step) is Chain


def test_a_step_named_by_its_own_key_shares_the_cache_of_its_instances(folder: Path) -> None:
    assert Tripler(infra=cached(folder)).run(1.0) == 3.0
    configured = Layer.model_validate({"name": "Tripler", "infra": cached(folder)})
    assert configured.lookup(1.0).cached()  # the key names the class; it is not in the uid
    assert configured.lookup(1.0).paths.step_uid.startswith("Tripler-")


def test_a_field_named_like_the_discriminator_key_is_refused() -> None:
    with pytest.raises(TypeError, match="field 'name'"):

        class NameField(Layer):
            name: str = "x"

            def _run(self, value: float) -> float:
                return value


def test_a_discriminator_key_must_be_an_identifier() -> None:
    with pytest.raises(TypeError, match="discriminator_key=3"):

        class Odd(Step, discriminator_key=3):  # type: ignore[arg-type]
            pass


# ---------------------------------------------------------------- errors name their step


def test_an_error_names_the_step_that_raised_it(folder: Path) -> None:
    chain = Chain(steps=[Mult(coeff=2), Faulty(failing=True)])
    with pytest.raises(ValueError, match="faulty failure") as raised:
        chain.run(1.0)
    assert "  -> in Faulty(failing=True)" in raised.value.__notes__


def test_a_cached_error_names_its_step_and_how_to_compute_it_again(folder: Path) -> None:
    chain = Chain(steps=[Mult(coeff=2), Faulty(failing=True)], infra=cached(folder))
    with pytest.raises(ValueError, match="faulty failure") as computed:
        chain.run(1.0)
    assert "  -> in Faulty(failing=True)" in computed.value.__notes__
    with pytest.raises(ValueError, match="faulty failure") as cached_error:
        Chain(steps=[Mult(coeff=2), Faulty()], infra=cached(folder)).run(1.0)
    notes = "\n".join(cached_error.value.__notes__)
    assert "  -> in Faulty(failing=True)" in notes  # where it was raised
    assert "mode='retry' computes it again" in notes


def test_a_long_field_value_is_cut_in_the_note() -> None:
    class Text(Step):
        text: str = ""

        def _run(self, value: float) -> float:
            raise ValueError("no")

    with pytest.raises(ValueError, match="no") as raised:
        Text(text="x" * 100).run(1.0)
    [note] = raised.value.__notes__
    assert "..." in note
    assert len(note) < 70


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            [{"type": "Mult", "coef": 3.0}],
            "steps.0.coef: Extra inputs are not permitted (step Mult)",
        ),
        ([{"type": "Mult", "coeff": "hello"}], "steps.0.coeff: Input should be a valid number"),
        ([{"type": "Nope"}], "steps.0: Value error, type='Nope' is not a registered Step"),
        ([[{"type": "Mult"}, {"type": "Add", "y": 1.0}]], "steps.0.steps.1.y: Extra inputs"),
        ({"a": {"type": "Mult"}, "b": {"type": "Add", "y": 1.0}}, "steps.b.y: Extra inputs"),
    ],
)
def test_a_chain_validation_error_names_the_step_and_field(steps: Any, expected: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Chain(steps=steps)
    summary = "\n".join(raised.value.__notes__)
    assert expected in summary
    assert "OrderedDict" not in summary  # the union branch that was not meant stays out


def test_a_validation_error_without_union_noise_gets_no_summary() -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Mult(coef=3.0)
    assert not getattr(raised.value, "__notes__", [])


class ScaledMult(Mult):
    scale: float = 1.0


@pytest.mark.parametrize(
    ("config", "hint"),
    [
        ({"type": "Mult", "coef": 3.0}, False),
        ({"type": "Mult", "scale": 2.0}, True),
        ({"coeff": 3.0}, True),
    ],
)
def test_the_forgotten_discriminator_hint_fires_only_when_a_subclass_has_the_fields(
    config: dict[str, Any], hint: bool
) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Chain(steps=[config])
    summary = "\n".join(raised.value.__notes__)
    assert ("forgotten to specify the discriminator key 'type'" in summary) is hint
    if hint:
        assert "ScaledMult" in summary


# ---------------------------------------------------------------- small APIs of exca


def test_derive_copies_the_shared_settings_into_another_backend(folder: Path) -> None:
    base = Cached(folder=folder, keep_in_ram=True, mode="retry")
    same = base.derive(mode="force")
    assert (type(same), same.folder, same.keep_in_ram, same.mode) == (Cached, folder, True, "force")
    assert base.mode == "retry"  # the original is unchanged
    from assay_steps import Backend

    plain = base.derive("Backend")
    assert type(plain) is Backend
    assert plain.keep_in_ram
    with pytest.raises(ValueError, match="'Nope' is not a known backend"):
        base.derive("Nope")
    with pytest.raises(pydantic.ValidationError, match="partition"):
        base.derive(partition="gpu")  # a change the target lacks is an error, not dropped


def test_force_forward_is_a_deprecated_name_of_force(folder: Path) -> None:
    with pytest.warns(DeprecationWarning, match="force-forward.*deprecated"):
        step = Stamp(infra=cached(folder, mode="force-forward"))
    assert step.infra is not None
    assert step.infra.mode == "force"


def test_cache_type_is_accepted_and_the_format_stays_chosen_per_value(folder: Path) -> None:
    class PickledMult(Mult):
        CACHE_TYPE = "Pickle"

    assert PickledMult.CACHE_TYPE == "Pickle"
    assert Step.CACHE_TYPE is None
    chain = Chain(steps=[Add(), PickledMult(infra=Cached())], infra=cached(folder))
    assert chain.run(1.0) == 4.0
    assert chain.lookup(1.0).cached()
    with pytest.raises(TypeError, match="CACHE_TYPE=3"):

        class Wrong(Mult):
            CACHE_TYPE = 3  # type: ignore[assignment]


def test_show_draws_the_tree_with_fields_backends_and_modes(folder: Path) -> None:
    chain = Chain(
        steps={
            "load": Held(options=Options(step=Chain(steps=[Add(x=2), Mult(coeff=5)]))),
            "scale": Mult(coeff=3, infra=Cached(mode="force")),
        },
        infra=cached("cache"),
    )
    assert chain.show() == (
        "Chain  [Cached, cache]\n"
        "└── steps\n"
        "    ├── load: Chain\n"
        "    │   └── steps\n"
        "    │       ├── Add  x=2.0\n"
        "    │       └── Mult  coeff=5.0\n"
        "    └── scale: Mult  coeff=3.0  [Cached, cache, mode=force]"
    )


def test_show_draws_steps_held_in_plain_models_and_lists() -> None:
    class Settings(pydantic.BaseModel):
        rate: float = 0.1
        inner: Step

    class Branching(Step):
        left: Step
        settings: Settings
        mixed: list[Step | None] = pydantic.Field(default_factory=list)

        def _run(self, value: float) -> float:
            return value

    step = Branching(
        left=Mult(), settings=Settings(rate=0.5, inner=Add(x=2)), mixed=[None, Mult(coeff=3)]
    )
    assert step.show() == (
        "Branching\n"
        "├── left: Mult\n"
        "├── settings  {'rate': 0.5}\n"
        "│   └── inner: Add  x=2.0\n"
        "└── mixed  [None]\n"
        "    └── Mult  coeff=3.0"
    )


class ByText(Step):
    def item_uid(self, value: Any) -> str | None:
        return str(value)

    def _run(self, value: Any) -> Any:
        return value


def test_a_long_or_path_like_item_uid_is_shortened_with_a_hash(folder: Path) -> None:
    step = ByText(infra=cached(folder))
    assert step.lookup("a").uid == "a"  # a safe uid stays as it is
    long_input = "/very/long/path/" + "x" * 500
    uid = step.lookup(long_input).uid
    assert len(uid) <= 200
    assert uid.startswith("_very_long_path_x")
    assert ByText(infra=cached(folder)).lookup(long_input).uid == uid  # deterministic
    # inputs sharing their ends differ by the hash of the whole uid
    assert step.lookup(long_input[:-1] + "y" + "x").uid != uid
    assert step.run(long_input) == long_input
    assert ByText(infra=cached(folder)).lookup(long_input).cached()


# ---------------------------------------------------------------- items stream through a chain


class Puller(Step):
    """A ``_run_batch`` that pulls its inputs one at a time (not declared one-per-input)."""

    def _run_batch(self, values: Iterable[float]) -> Iterator[float]:
        for value in values:
            CALLS.append(("Puller", value))
            yield value * 10


def test_a_chain_over_an_endless_generator_yields_its_first_result() -> None:
    items = Chain(steps=[Mult(coeff=2), Puller(), Add(x=1)]).run_many(itertools.count(1))
    assert next(items) == 21.0
    assert next(items) == 41.0
    assert CALLS == [
        ("Mult", 1),
        ("Puller", 2.0),
        ("Add", 20.0),
        ("Mult", 2),
        ("Puller", 4.0),
        ("Add", 40.0),
    ]
    with pytest.raises(TypeError, match="length of these results is unknown"):
        len(items)


def test_items_pass_every_step_before_the_next_item_starts() -> None:
    chain = Chain(steps=[Mult(coeff=10), Chain(steps=[Add(x=1), Mult(coeff=10)])])
    assert list(chain.run_many([1, 2])) == [110.0, 210.0]
    assert CALLS == [
        ("Mult", 1),
        ("Add", 10),
        ("Mult", 11.0),
        ("Mult", 2),
        ("Add", 20),
        ("Mult", 21.0),
    ]


def test_a_failing_item_stops_the_stream_at_that_item(folder: Path) -> None:
    # As in exca: the items after the failing one are not computed by any step.
    with pytest.raises(ValueError, match="faulty failure"):
        list(Chain(steps=[Mult(), Faulty(failing=True)]).run_many([1.0, 2.0]))
    assert calls("Mult") == [1.0]
    CALLS.clear()
    chain = Chain(steps=[Mult(), Fail()], infra=cached(folder))
    with pytest.raises(ValueError, match="boom -4"):
        chain.run_many([1.0, -2.0, 3.0])
    assert calls("Mult") == [1.0, -2.0]
    assert [chain.lookup(v).status for v in (1.0, -2.0, 3.0)] == ["success", "error", None]


def test_a_cached_step_in_a_stream_takes_a_window_of_items_at_a_time(folder: Path) -> None:
    items = Chain(steps=[Mult(infra=cached(folder)), Add(x=1)]).run_many(itertools.count())
    assert next(items) == 1.0
    first_window = Mult(infra=cached(folder))
    assert first_window.lookup(255).cached()
    assert not first_window.lookup(256).cached()
    assert [next(items) for _ in range(300)][-1] == 601.0  # the next window in turn


def test_a_stream_keeps_only_the_items_in_flight() -> None:
    class Blob:
        def __init__(self, size: int) -> None:
            self.data = bytearray(size)

    alive: weakref.WeakSet[Blob] = weakref.WeakSet()

    def blobs() -> Iterator[Blob]:
        while True:
            blob = Blob(1000)
            alive.add(blob)
            yield blob

    class Weigh(Step):
        def _run(self, value: Any) -> int:
            return len(value.data)

    items = Chain(steps=[Weigh(), Add(x=0)]).run_many(blobs())
    assert [next(items) for _ in range(1000)] == [1000.0] * 1000
    gc.collect()
    assert len(alive) <= 2


def test_results_of_an_iterator_can_be_read_once_and_of_a_list_again() -> None:
    chain = Chain(steps=[Mult(), Add()])
    once = chain.run_many(iter([1.0, 2.0]))
    assert list(once) == [3.0, 5.0]
    assert list(once) == []
    again = chain.run_many([1.0, 2.0])
    assert list(again) == list(again) == [3.0, 5.0]


def test_a_batch_that_breaks_its_protocol_in_a_stream_caches_nothing(folder: Path) -> None:
    class Short(Step):
        def _run_batch(self, values: Iterable[float]) -> Iterator[float]:
            yield from list(values)[:-1]

    items = Chain(steps=[Short(), Add(infra=cached(folder))]).run_many(iter([1.0, 2.0]))
    with pytest.raises(BatchProtocolError, match="1 results for 2 inputs"):
        list(items)
    assert not Add(infra=cached(folder)).lookup(1.0).cached()
