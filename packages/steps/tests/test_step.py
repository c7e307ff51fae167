"""Step, Chain and Func: the exca.steps contract and its caching behaviour."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_steps import BatchProtocolError, Cached, Chain, Func, Step, StepItems
from steps_testkit import CALLS, Add, Batched, Fail, Mult, Source, cached, calls
from store_testkit import all_frames, array_file_of, frame_of

# ---------------------------------------------------------------- running


def test_run_without_infra_computes_every_time() -> None:
    step = Mult(coeff=3)
    assert step.run(2.0) == 6.0
    assert step.run(2.0) == 6.0
    assert calls("Mult") == [2.0, 2.0]


def test_run_is_cached_per_input(folder: Path) -> None:
    step = Mult(coeff=3, infra=cached(folder))
    assert step.run(2.0) == 6.0
    assert step.run(2.0) == 6.0
    assert Mult(coeff=3, infra=cached(folder)).run(2.0) == 6.0  # a new instance hits too
    assert step.run(4.0) == 12.0
    assert calls("Mult") == [2.0, 4.0]


def test_run_many_keeps_input_order_and_one_entry_per_input(folder: Path) -> None:
    step = Mult(infra=cached(folder))
    step.run(3.0)
    items = step.run_many([5.0, 3.0, 1.0, 5.0])
    assert isinstance(items, StepItems)
    assert len(items) == 4
    assert list(items) == [10.0, 6.0, 2.0, 10.0]
    assert calls("Mult") == [3.0, 5.0, 1.0]  # duplicates and hits are not recomputed
    entries_folder = step.lookup(3.0).paths.entries_folder
    uids = [f.uid for f in all_frames(entries_folder) if f.kind != 6]  # not the seals
    assert sorted(uids) == sorted(step.lookup(v).uid for v in (5.0, 3.0, 1.0))


def test_changed_config_recomputes_and_same_config_reuses(folder: Path) -> None:
    Mult(coeff=2, infra=cached(folder)).run(1.0)
    Mult(coeff=2.0, infra=cached(folder)).run(1.0)
    Mult(coeff=5, infra=cached(folder)).run(1.0)
    assert calls("Mult") == [1.0, 1.0]  # coeff 2 (once), coeff 5
    # fields excluded from the uid do not split the cache
    Mult(coeff=2, calls=7, infra=cached(folder)).run(1.0)
    assert len(calls("Mult")) == 2


class Verbose(Step):
    verbose: bool = False

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["verbos"]  # a typo: the field is "verbose"

    def _run(self, value: int) -> int:
        return value


def test_excluding_a_field_that_does_not_exist_is_a_clear_error(folder: Path) -> None:
    # As in exca: a typo would otherwise leave the field in the uid without a word.
    step = Verbose(verbose=True, infra=cached(folder))
    with pytest.raises(ValueError, match=r"Verbose\._exclude_from_cls_uid\(\).*'verbos'") as raised:
        step.run(1)
    assert "'verbose'" in str(raised.value)  # the fields it could have meant
    assert not folder.exists()  # refused before anything is written


def test_infra_settings_are_not_part_of_the_uid(folder: Path) -> None:
    Mult(infra=cached(folder)).run(1.0)
    Mult(infra=cached(folder, keep_in_ram=True)).run(1.0)
    assert calls("Mult") == [1.0]


def test_generator_step_runs_without_input(folder: Path) -> None:
    step = Source(n=4, infra=cached(folder))
    assert step.run() == [0, 1, 2, 3]
    assert step.run() == [0, 1, 2, 3]
    assert calls("Source") == [None]
    assert step.lookup().status == "success"


def test_step_needing_input_refuses_to_run_without_one() -> None:
    with pytest.raises(TypeError, match="needs an input"):
        Mult().run()


def test_step_without_run_is_rejected() -> None:
    class Nothing(Step):
        pass

    with pytest.raises(TypeError, match="must override _run"):
        Nothing()


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValueError, match="colour"):
        Mult(colour=1)


def test_array_results_round_trip_memory_mapped_and_read_only(folder: Path) -> None:
    class Ones(Step):
        def _run(self, value: int) -> np.ndarray:
            return np.arange(value, dtype=np.float32).reshape(-1, 1)

    step = Ones(infra=cached(folder))
    first = step.run(5)
    again = Ones(infra=cached(folder)).run(5)
    assert isinstance(again, np.ndarray)
    np.testing.assert_array_equal(first, again)
    assert again.dtype == np.float32
    assert again.shape == (5, 1)
    assert not again.flags.writeable
    assert frame_of(step.lookup(5)).kind == 3  # small: inline in its frame
    big = Ones(infra=cached(folder)).run(40000)  # 160 kB: a memory-mapped file of its own
    assert isinstance(big, np.memmap)
    assert not big.flags.writeable
    np.testing.assert_array_equal(big, np.arange(40000, dtype=np.float32).reshape(-1, 1))
    assert array_file_of(step.lookup(40000)).exists()
    empty = Ones(infra=cached(folder)).run(0)
    assert empty.shape == (0, 1)


def test_fortran_ordered_array_results_keep_their_values(folder: Path) -> None:
    class Fortran(Step):
        def _run(self, value: int) -> np.ndarray:
            return np.asfortranarray(np.arange(6).reshape(2, 3) * value)

    Fortran(infra=cached(folder)).run(2)
    np.testing.assert_array_equal(
        Fortran(infra=cached(folder)).run(2), np.arange(6).reshape(2, 3) * 2
    )


# ---------------------------------------------------------------- modes


def test_mode_force_recomputes_once_and_overwrites(folder: Path) -> None:
    Mult(infra=cached(folder)).run(1.0)
    forced = Mult(infra=cached(folder, mode="force"))
    assert forced.run(1.0) == 2.0
    assert forced.run(1.0) == 2.0  # once per instance, not on every call
    assert calls("Mult") == [1.0, 1.0]
    assert Mult(infra=cached(folder)).lookup(1.0).status == "success"


def test_mode_read_only_never_computes_nor_writes(folder: Path) -> None:
    Mult(infra=cached(folder)).run(1.0)
    reader = Mult(infra=cached(folder, mode="read-only"))
    assert reader.run(1.0) == 2.0
    with pytest.raises(RuntimeError, match=r"no cached result .* mode=.read-only. forbids"):
        reader.run(2.0)
    assert calls("Mult") == [1.0]
    empty = folder.parent / "empty"
    with pytest.raises(RuntimeError, match="read-only"):
        Mult(infra=cached(empty, mode="read-only")).run(1.0)
    assert not empty.exists()


def test_mode_cached_reuses_errors_and_retry_recomputes_them(folder: Path) -> None:
    step = Fail(infra=cached(folder))
    with pytest.raises(ValueError, match="boom -1"):
        step.run(-1)
    with pytest.raises(ValueError, match="boom -1"):
        Fail(infra=cached(folder)).run(-1)
    assert calls("Fail") == [-1]
    with pytest.raises(ValueError, match="boom -1"):
        Fail(infra=cached(folder, mode="retry")).run(-1)
    assert calls("Fail") == [-1, -1]
    # retry leaves successes alone
    Fail(infra=cached(folder)).run(3)
    Fail(infra=cached(folder, mode="retry")).run(3)
    assert calls("Fail") == [-1, -1, 3]


def test_cached_error_shows_type_message_and_original_traceback(folder: Path) -> None:
    step = Fail(message="kaput", infra=cached(folder))
    with pytest.raises(ValueError, match="kaput"):
        step.run(-5)
    handle = Fail(message="kaput", infra=cached(folder)).lookup(-5)
    assert handle.status == "error"
    assert handle.cached()
    with pytest.raises(ValueError, match="kaput -5") as info:
        handle.result()
    # Python 3.11 attaches the traceback as a note; 3.10 as the error's cause
    notes = "\n".join(getattr(info.value, "__notes__", [])) or str(info.value.__cause__)
    assert "original traceback" in notes
    assert "in _run" in notes
    assert "steps_testkit.py" in notes


def test_an_error_in_run_many_stops_at_the_failing_item(folder: Path) -> None:
    step = Fail(infra=cached(folder))
    with pytest.raises(ValueError, match="boom -2"):
        list(step.run_many([1, -2, 3]))
    assert step.lookup(1).status == "success"
    assert step.lookup(-2).status == "error"
    assert step.lookup(3).status is None  # not computed after the failure


def test_an_error_in_a_chain_is_cached_under_the_item_that_failed(folder: Path) -> None:
    chain = Chain(steps=[Add(x=0), Fail()], infra=cached(folder))
    with pytest.raises(ValueError, match="boom -2"):
        list(chain.run_many([6, -2, 7]))
    assert [chain.lookup(v).status for v in (6, -2, 7)] == ["success", "error", None]
    assert chain.run(6) == 6
    # an earlier step failing first: the later item's failure is not the one reported
    late = Chain(steps=[Fail(message="first"), Fail(message="second")], infra=cached(folder))
    with pytest.raises(ValueError, match="first -3"):
        list(late.run_many([5, -3, -4]))
    assert [late.lookup(v).status for v in (5, -3, -4)] == ["success", "error", None]


def test_an_error_before_a_chain_shared_last_step_is_cached_for_the_chain(folder: Path) -> None:
    # The chain's entry is its last step's; the first step, without a cache, fails.
    def chain(mode: str = "cached") -> Chain:
        return Chain(steps=[Fail(), Add(x=1, infra=Cached())], infra=cached(folder, mode=mode))

    with pytest.raises(ValueError, match="boom -2"):
        chain().run_many([1, -2, -3])
    assert [chain().lookup(v).status for v in (1, -2, -3)] == ["success", "error", None]
    with pytest.raises(ValueError, match="boom -2"):
        chain("read-only").run(-2)  # re-raised from the cache, as exca
    assert calls("Fail") == [1, -2]


def test_retrying_a_chain_computes_nothing_for_its_cached_successes(folder: Path) -> None:
    def chain(mode: str) -> Chain:
        return Chain(steps=[Mult(), Add(x=1, infra=Cached())], infra=cached(folder, mode=mode))

    assert chain("cached").run(1.0) == 3.0
    assert chain("retry").run(1.0) == 3.0  # as exca: retry recomputes errors only
    assert calls("Mult") == [1.0]


def test_forcing_a_chain_computes_a_repeated_input_once(folder: Path) -> None:
    chain = Chain(steps=[Mult(), Add(x=1, infra=Cached())], infra=cached(folder, mode="force"))
    assert list(chain.run_many([1.0, 1.0, 2.0])) == [3.0, 3.0, 5.0]
    assert calls("Mult") == [1.0, 2.0]  # as exca: one computation per distinct input


def test_the_results_of_run_many_can_be_read_again(folder: Path) -> None:
    # As exca's StepItems: each iteration reads the results again (recomputes them without
    # a cache), instead of a second pass silently finding nothing.
    items = Mult(infra=cached(folder)).run_many([1.0, 2.0])
    assert (list(items), list(items), max(items)) == ([2.0, 4.0], [2.0, 4.0], 4.0)
    assert calls("Mult") == [1.0, 2.0]
    uncached = Mult().run_many([3.0])
    assert (list(uncached), list(uncached)) == ([6.0], [6.0])
    assert calls("Mult") == [1.0, 2.0, 3.0, 3.0]


def test_a_broken_batch_in_a_chain_caches_nothing(folder: Path) -> None:
    chain = Chain(steps=[Batched(extra=-1), Add(x=1)], infra=cached(folder))
    with pytest.raises(BatchProtocolError):
        chain.run_many([1, 2])
    # which input a result belongs to is unknown: nothing is cached (as in exca)
    assert [chain.lookup(v).status for v in (1, 2)] == [None, None]


def test_run_many_with_a_cache_raises_an_item_error_before_returning(folder: Path) -> None:
    # As in exca: a run for effect (results not read) still fails loudly.
    step = Fail(infra=cached(folder))
    with pytest.raises(ValueError, match="boom -2"):
        step.run_many([1, -2, 3])  # computed now, failing
    with pytest.raises(ValueError, match="boom -2"):
        step.run_many([4, -2, 5])  # cached error: raised before anything is computed
    with pytest.raises(ValueError, match="boom -2"):
        Chain(steps=[Add(x=0), Fail()], infra=cached(folder)).run_many([6, -2])
    with pytest.raises(ValueError, match="boom -2"):
        Chain(steps=[Add(x=0), Fail()], infra=cached(folder)).run_many([7, -2])
    assert calls("Fail") == [1, -2, 6, -2]
    assert calls("Add") == [6, -2]
    lazy = Fail().run_many([8, -2])  # without a cache, computed as read (as in exca)
    with pytest.raises(ValueError, match="boom -2"):
        list(lazy)


def test_bad_mode_in_infra_dict_names_the_value() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        Mult(infra={"backend": "Cached", "mode": "sometimes"})


# ---------------------------------------------------------------- batches


def test_run_batch_processes_all_missing_items_at_once(folder: Path) -> None:
    step = Batched(infra=cached(folder))
    step.run(1)
    assert list(step.run_many([1, 2, 3, 4])) == [10, 20, 30, 40]
    assert calls("Batched") == [1, 3]


@pytest.mark.parametrize("extra", [1, -1])
def test_run_batch_must_yield_one_result_per_input(folder: Path, extra: int) -> None:
    with pytest.raises(BatchProtocolError, match="results"):
        list(Batched(extra=extra).run_many([1, 2, 3]))
    with pytest.raises(BatchProtocolError, match="results"):
        list(Batched(extra=extra, infra=cached(folder)).run_many([1, 2, 3]))
    # which input a result belongs to is unknown: none of the batch's results is cached
    step = Batched(extra=extra, infra=cached(folder))
    assert [step.lookup(v).status for v in (1, 2, 3)] == [None, None, None]


# ---------------------------------------------------------------- item uids


class ById(Step):
    def item_uid(self, value: Any) -> str | None:
        return value["id"] if isinstance(value, dict) else None

    def _run(self, value: Any) -> Any:
        return value["x"] * 2


def test_item_uid_gives_custom_keys(folder: Path) -> None:
    step = ById(infra=cached(folder))
    assert step.run({"id": "a", "x": 1}) == 2
    assert step.run({"id": "a", "x": 100}) == 2  # same key, cached
    assert step.lookup({"id": "a"}).uid == "a"


@pytest.mark.parametrize("hostile", ["../evil", "a/b", "/abs", "..", ".hidden", "", "x" * 300])
def test_unsafe_item_uids_become_safe_names_inside_the_cache(folder: Path, hostile: str) -> None:
    # As in exca, a long or path-like uid is shortened with a hash instead of refused; here
    # the unsafe characters go too, so that no uid can name a file outside its folder.
    step = ById(infra=cached(folder))
    assert step.run({"id": hostile, "x": 1}) == 2
    assert step.run({"id": hostile, "x": 100}) == 2  # the same uid on every run
    uid = step.lookup({"id": hostile}).uid
    assert uid != hostile
    assert len(uid) <= 200
    assert "/" not in uid
    assert ".." not in uid
    assert not uid.startswith(".")
    assert step.lookup({"id": hostile + "!"}).uid != uid  # another uid, another name
    assert not (folder.parent / "evil").exists()


def test_a_custom_item_uid_must_be_a_string(folder: Path) -> None:
    with pytest.raises(TypeError, match=r"ById\.item_uid.*returned 7, a int; expected a str"):
        ById(infra=cached(folder)).run({"id": 7, "x": 1})


def test_unhashable_input_is_a_clear_error(folder: Path) -> None:
    with pytest.raises(TypeError, match="cannot compute a cache uid"):
        Mult(infra=cached(folder)).run(object())


class Lazy(Step):
    def _run(self, value: int) -> Any:
        return (i for i in range(value))  # a generator: computed, but cannot be stored


def test_a_result_that_cannot_be_stored_is_a_clear_error(folder: Path) -> None:
    step = Lazy(infra=cached(folder))
    message = r"Lazy.*item .*generator.*cannot be stored.*expected a picklable result"
    with pytest.raises(TypeError, match=message):
        step.run(3)
    with pytest.raises(TypeError, match=message):  # the cached error says the same
        step.run(3)
    assert Lazy().run(3) is not None  # without a cache nothing is stored: no error


# ---------------------------------------------------------------- keep_in_ram


def test_keep_in_ram_serves_hits_without_sharing_mutable_objects(folder: Path) -> None:
    class Listing(Step):
        def _run(self, value: int) -> dict[str, list[int]]:
            return {"items": list(range(value))}

    step = Listing(infra=cached(folder, keep_in_ram=True))
    first = step.run(3)
    first["items"].append(99)  # a caller corrupting its copy ...
    second = step.run(3)
    assert second == {"items": [0, 1, 2]}  # ... does not corrupt the cache
    second["items"].clear()
    assert step.run(3) == {"items": [0, 1, 2]}


def test_keep_in_ram_arrays_are_read_only(folder: Path) -> None:
    class Arr(Step):
        def _run(self, value: int) -> np.ndarray:
            return np.zeros(value)

    step = Arr(infra=cached(folder, keep_in_ram=True))
    step.run(4)
    hit = step.run(4)
    with pytest.raises(ValueError, match="read-only"):
        hit[0] = 1.0


# ---------------------------------------------------------------- lookup and clear


def test_lookup_reports_status_and_result_without_computing(folder: Path) -> None:
    step = Mult(infra=cached(folder))
    handle = step.lookup(4.0)
    assert handle.status is None
    assert not handle.cached()
    with pytest.raises(RuntimeError, match="no cached result"):
        handle.result()
    step.run(4.0)
    assert handle.status == "success"
    assert handle.result() == 8.0
    assert handle.paths.step_folder.is_dir()
    assert handle.paths.segments_folder.parent == handle.paths.entries_folder
    assert handle.paths.entries_folder.parent == handle.paths.step_folder
    assert calls("Mult") == [4.0]


def test_clear_cache_makes_the_item_recompute(folder: Path) -> None:
    step = Mult(infra=cached(folder))
    step.run(1.0)
    step.lookup(1.0).clear_cache()
    assert step.lookup(1.0).status is None
    step.run(1.0)
    assert calls("Mult") == [1.0, 1.0]


def test_lookup_without_infra_has_no_paths() -> None:
    handle = Mult().lookup(1.0)
    assert handle.status is None
    with pytest.raises(RuntimeError, match="no infra"):
        _ = handle.paths


def test_config_json_describes_the_step(folder: Path) -> None:
    import json

    step = Mult(coeff=7, infra=cached(folder))
    step.run(1.0)
    config = json.loads((step.lookup(1.0).paths.step_folder / "config.json").read_text())
    assert config["steps"] == [{"type": "Mult", "coeff": 7.0, "calls": 0}]


# ---------------------------------------------------------------- clone


def test_clone_updates_with_dicts_and_kwargs(folder: Path) -> None:
    step = Mult(coeff=2, infra=cached(folder))
    other = step.clone({"coeff": 4})
    assert other.coeff == 4
    assert step.coeff == 2
    assert step.clone(coeff=5).coeff == 5
    assert other.infra == step.infra
    assert other.infra is not step.infra
    chain = Chain(steps=[Mult(coeff=2), Add(x=1)])
    assert chain.clone({"steps": [{"type": "Add", "x": 5}]}).run(1.0) == 6.0


def test_clone_dotted_keys_reach_the_steps_of_a_chain_by_index_and_name() -> None:
    # As in exca: "steps.0.coeff" reaches the first step of a chain given as a list.
    chain = Chain(steps=[Mult(coeff=2), Add(x=1)])
    changed = chain.clone({"steps.0.coeff": 5, "steps.1.x": 0.5})
    assert changed.run(1.0) == 5.5
    assert chain.run(1.0) == 3.0  # the original is unchanged
    named = Chain(steps={"scale": Mult(coeff=2), "shift": Add(x=1)})
    assert named.clone({"steps.shift.x": 10}).run(1.0) == 12.0
    with pytest.raises(KeyError, match=r"'steps\.2\.x'.*'2'"):
        chain.clone({"steps.2.x": 1})  # no third step
    with pytest.raises(KeyError, match=r"'steps\.first\.x'.*'first'"):
        chain.clone({"steps.first.x": 1})  # a list is indexed by number


def test_clone_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="nope"):
        Mult().clone(nope=1)


# ---------------------------------------------------------------- chains


def test_chain_runs_in_sequence_with_indexing_and_slicing() -> None:
    chain = Chain(steps=[Mult(coeff=2), Add(x=1), Mult(coeff=10)])
    assert chain.run(1.0) == 30.0
    assert len(chain) == 3
    assert isinstance(chain[1], Add)
    head = chain[:2]
    assert isinstance(head, Chain)
    assert len(head) == 2
    assert head.run(1.0) == 3.0


def test_chain_with_named_steps() -> None:
    chain = Chain(steps={"double": Mult(coeff=2), "inc": Add(x=1)})
    assert chain["inc"].x == 1
    assert chain.run(2.0) == 5.0
    assert isinstance(chain[:1], Chain)
    assert list(chain[:1].steps) == ["double"]
    with pytest.raises(TypeError, match="string indices"):
        Chain(steps=[Mult()])["double"]


def test_empty_chain_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        Chain(steps=[])


def test_chain_caches_each_step_and_recomputes_only_changed_steps(folder: Path) -> None:
    def make(x: float) -> Chain:
        return Chain(
            steps=[Mult(coeff=2, infra=cached(folder)), Add(x=x, infra=cached(folder))],
        )

    assert list(make(1).run_many([1.0, 2.0])) == [3.0, 5.0]
    assert list(make(1).run_many([1.0, 2.0])) == [3.0, 5.0]
    assert list(make(10).run_many([1.0, 2.0])) == [12.0, 14.0]
    assert calls("Mult") == [1.0, 2.0]  # the first step was reused
    assert calls("Add") == [2.0, 4.0, 2.0, 4.0]


def test_chain_without_infra_starts_each_item_after_its_last_cached_step(folder: Path) -> None:
    # As in exca: a step without a cache between cached ones is not run again for an item
    # that a later step has cached; changing the last step recomputes only the last step.
    def make(last: float) -> Chain:
        return Chain(
            steps=[
                Mult(coeff=2, infra=cached(folder / "first")),
                Add(x=1),  # no cache: computed whenever it is reached
                Mult(coeff=last, infra=cached(folder / "last")),
            ]
        )

    assert list(make(3).run_many([1.0, 2.0])) == [9.0, 15.0]
    CALLS.clear()
    assert list(make(3).run_many([1.0, 2.0, 4.0])) == [9.0, 15.0, 27.0]
    assert calls("Mult") == [4.0, 9.0]  # only the new item goes through the steps
    assert calls("Add") == [8.0]
    CALLS.clear()
    assert list(make(10).run_many([1.0, 2.0])) == [30.0, 50.0]
    assert calls("Add") == [2.0, 4.0]  # the last cached step before it answers its input
    assert calls("Mult") == [3.0, 5.0]  # the first step is read, not run


def test_chain_items_started_late_keep_their_order_around_a_failure(folder: Path) -> None:
    def make() -> Chain:
        return Chain(
            steps=[Mult(coeff=1, infra=cached(folder)), Fail(), Add(x=1, infra=cached(folder))]
        )

    assert list(make().run_many([2.0, 3.0])) == [3.0, 4.0]
    CALLS.clear()
    with pytest.raises(ValueError, match=r"boom -0\.5"):
        list(make().run_many([1.0, 2.0, -0.5, 3.0]))
    assert calls("Fail") == [1.0, -0.5]  # 2.0 and 3.0 start after the last step
    assert calls("Add") == [1.0]  # the item before the failing one went on
    CALLS.clear()
    assert list(make().run_many([3.0, 1.0, 2.0, 3.0])) == [4.0, 2.0, 3.0, 4.0]
    assert CALLS == []


def test_chain_infra_folder_propagates_and_chain_shares_the_last_step_cache(
    folder: Path,
) -> None:
    chain = Chain(
        steps=[Mult(coeff=2, infra=Cached()), Add(x=1, infra=Cached())], infra=cached(folder)
    )
    assert chain.run(1.0) == 3.0
    assert chain.steps[0].infra.folder == folder  # type: ignore[union-attr]
    assert chain.lookup(1.0).paths.base_folder == folder
    # the chain's entry is the last step's entry, keyed by the chain's input
    last = Add(x=1, infra=cached(folder))
    assert chain.lookup(1.0).paths.step_uid != last.lookup(1.0).paths.step_uid
    assert chain.run(1.0) == 3.0
    assert calls("Mult") == [1.0]
    assert calls("Add") == [2.0]


def test_read_only_chain_never_computes_even_when_its_steps_could(folder: Path) -> None:
    def make(mode: str) -> Chain:
        steps = [Mult(infra=Cached()), Add(infra=Cached())]
        return Chain(steps=steps, infra=cached(folder, mode=mode))

    with pytest.raises(RuntimeError, match="read-only"):
        make("read-only").run(1.0)
    assert calls("Mult") == []
    assert make("cached").run(1.0) == 3.0
    assert make("read-only").run(1.0) == 3.0
    assert make("force").run(1.0) == 3.0
    assert calls("Mult") == [1.0, 1.0]  # force on the chain recomputes its steps


def test_chain_with_only_chain_infra_caches_the_final_result(folder: Path) -> None:
    chain = Chain(steps=[Mult(coeff=2), Add(x=1)], infra=cached(folder))
    assert chain.run(1.0) == 3.0
    assert chain.run(1.0) == 3.0
    assert calls("Mult") == [1.0]
    handle = chain.lookup(1.0)
    assert handle.status == "success"
    handle.clear_cache()
    assert chain.run(1.0) == 3.0
    assert calls("Mult") == [1.0, 1.0]


def test_chain_whose_result_is_cached_computes_none_of_its_steps(folder: Path) -> None:
    # As in exca: the chain's entry (its last step's) answers before any step runs, even
    # when an earlier step has a cache of its own that lacks the item.
    Chain(steps=[Mult(coeff=2), Add(x=1)], infra=cached(folder)).run(1.0)
    CALLS.clear()
    chain = Chain(
        steps=[Mult(coeff=2, infra=Cached()), Add(x=1, infra=Cached())], infra=cached(folder)
    )
    assert list(chain.run_many([1.0, 2.0, 1.0])) == [3.0, 5.0, 3.0]
    assert calls("Mult") == [2.0]  # only the item missing from the chain's cache
    assert calls("Add") == [4.0]


def test_force_in_a_chain_propagates_downstream(folder: Path) -> None:
    def make(mode: str) -> Chain:
        return Chain(steps=[Mult(infra=cached(folder, mode=mode)), Add(infra=cached(folder))])

    make("cached").run(1.0)
    make("force").run(1.0)
    assert calls("Mult") == [1.0, 1.0]
    assert calls("Add") == [2.0, 2.0]  # downstream recomputed, not stale


FAILING: set[float] = set()


class Flaky(Step):
    """Fails on the inputs listed in FAILING (a transient failure, fixed by emptying it)."""

    def _run(self, value: float) -> float:
        CALLS.append(("Flaky", value))
        if value in FAILING:
            raise OSError(f"transient failure on {value}")
        return value


@pytest.mark.parametrize("steps_folder", ["same", "other"])
def test_retry_on_a_chain_recomputes_the_cached_errors_of_its_steps(
    folder: Path, steps_folder: str
) -> None:
    # As in exca: retrying a chain retries whichever of its steps failed, and only that one.
    sub_folder = folder if steps_folder == "same" else folder / "steps"

    def make(mode: str) -> Chain:
        steps = [Mult(infra=cached(sub_folder)), Flaky(infra=cached(sub_folder))]
        return Chain(steps=steps, infra=cached(folder, mode=mode))

    FAILING.add(2.0)
    try:
        with pytest.raises(OSError, match="transient failure"):
            make("cached").run(1.0)
        FAILING.clear()
        with pytest.raises(OSError, match="transient failure"):
            make("cached").run(1.0)  # cached mode re-raises the cached error
        assert make("retry").run(1.0) == 2.0
    finally:
        FAILING.clear()
    assert calls("Flaky") == [2.0, 2.0]
    assert calls("Mult") == [1.0]  # the step that succeeded is not recomputed
    assert make("cached").run(1.0) == 2.0
    assert make("cached").lookup(1.0).status == "success"


def test_clear_cache_recursive_clears_the_chain_steps(folder: Path) -> None:
    chain = Chain(steps=[Mult(infra=cached(folder)), Add(infra=cached(folder))])
    chain.run(1.0)
    chain.lookup(1.0).clear_cache(recursive=True)
    chain.run(1.0)
    assert calls("Mult") == [1.0, 1.0]
    chain.lookup(1.0).clear_cache(recursive=False)
    chain.run(1.0)
    assert calls("Mult") == [1.0, 1.0]
    assert calls("Add") == [2.0, 2.0, 2.0]


def test_chain_starting_with_a_generator(folder: Path) -> None:
    class Total(Step):
        def _run(self, value: list[int]) -> int:
            return sum(value)

    chain = Chain(steps=[Source(n=5), Total()], infra=cached(folder))
    assert chain.run() == 10
    assert chain.lookup().status == "success"


def test_resolve_step_runs_an_equivalent_chain(folder: Path) -> None:
    class Pipeline(Step):
        coeff: float = 2.0
        shift: float = 0.0

        def _resolve_step(self) -> Step:
            return Chain(steps=[Mult(coeff=self.coeff), Add(x=self.shift)], infra=self.infra)

    step = Pipeline(coeff=3, shift=1, infra=cached(folder))
    assert step.run(2.0) == 7.0
    assert Pipeline(coeff=3, shift=1, infra=cached(folder)).run(2.0) == 7.0
    assert calls("Mult") == [2.0]
    assert step.lookup(2.0).status == "success"


# ---------------------------------------------------------------- Func


def scale(x: float, factor: float = 2.0) -> float:
    return x * factor


def pair(a: int, b: int) -> int:
    return a * 10 + b


def constant(value: int = 7) -> int:
    return value


def test_func_detects_the_input_parameter(folder: Path) -> None:
    assert Func(function=scale, factor=3.0).run(5.0) == 15.0
    assert Func(function=scale, infra=cached(folder)).run(5.0) == 10.0
    assert Func(function=f"{__name__}.scale").run(1.0) == 2.0


def test_func_with_all_defaults_is_a_generator() -> None:
    assert Func(function=constant).run() == 7
    assert Func(function=constant, value=3).run() == 3


def test_func_with_two_required_parameters_needs_input_param() -> None:
    with pytest.raises(ValueError, match=r"2 parameters without default \['a', 'b'\]"):
        Func(function=pair)
    assert Func(function=pair, input_param="b", a=4).run(2) == 42


def test_func_validates_fixed_kwargs_against_the_signature() -> None:
    with pytest.raises(ValueError, match="'speed'"):
        Func(function=scale, speed=1)
    with pytest.raises(ValueError, match="factor='fast'"):
        Func(function=scale, factor="fast")
    with pytest.raises(ValueError, match="input parameter"):
        Func(function=scale, x=1.0)
    with pytest.raises(ValueError, match="input_param='y'"):
        Func(function=scale, input_param="y")


def test_func_kwargs_are_part_of_the_uid(folder: Path) -> None:
    a = Func(function=scale, factor=3.0, infra=cached(folder))
    b = Func(function=scale, factor=4.0, infra=cached(folder))
    assert a.run(1.0) == 3.0
    assert b.run(1.0) == 4.0
    assert a.lookup(1.0).paths.step_uid != b.lookup(1.0).paths.step_uid


def test_func_with_local_function_refuses_to_cache(folder: Path) -> None:
    def local(x: int) -> int:
        return x

    assert Func(function=local).run(1) == 1  # fine without a cache
    with pytest.raises(TypeError, match="not importable"):
        Func(function=local, infra=cached(folder)).run(1)


def test_func_with_stdlib_import_path() -> None:
    assert Func(function="math.sqrt").run(16.0) == math.sqrt(16.0)


@pytest.mark.parametrize("misses_first", [0, 5, 40])
def test_entries_after_a_run_of_misses_are_still_reused_not_recomputed(
    folder: Path, misses_first: int
) -> None:
    # However many misses come first, the cached results and errors after them are reused.
    cached_values = [100.0 + i for i in range(30)] + [-1.0, -2.0]
    step = Fail(infra=cached(folder))
    for value in cached_values:
        with contextlib.suppress(ValueError):
            step.run(value)
    CALLS.clear()
    fresh = [float(i) for i in range(misses_first)]
    items = list(Fail(infra=cached(folder)).run_many([*fresh, *cached_values[:30]]))
    assert items == [*fresh, *cached_values[:30]]
    assert calls("Fail") == fresh
    with pytest.raises(ValueError, match="boom -1"):
        list(Fail(infra=cached(folder)).run_many([*[500.0 + i for i in range(40)], -1.0]))
    assert calls("Fail") == fresh  # a cached error raises before anything is computed (exca)
    assert not list(step.lookup(0.0).paths.claims_folder.glob("*.claim"))  # all released
