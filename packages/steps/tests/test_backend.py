"""The Backend base class: dict dispatch, registration and the executor extension point."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from assay_steps import Backend, Cached, ItemTask, StepPaths
from steps_testkit import Mult, calls


class Recording(Backend):
    """An executor that records its tasks, splits them and attaches a job to each."""

    parts: int = 2
    seen: ClassVar[list[int]] = []

    def _execute(self, tasks: list[ItemTask]) -> None:
        for task in tasks:
            for i, part in enumerate(task.split(self.parts)):
                type(self).seen.append(len(part))
                part.attach_job({"job_id": f"job-{i}"})
                part()

    @classmethod
    def _load_job(cls, ref: dict[str, Any], paths: StepPaths) -> Any:
        return ("job", ref["job_id"], paths.step_uid)


def test_infra_dict_dispatches_on_backend_key(folder: Path) -> None:
    step = Mult(infra={"backend": "Cached", "folder": str(folder), "mode": "retry"})
    assert type(step.infra) is Cached
    assert step.infra.folder == folder
    assert step.infra.mode == "retry"


def test_registered_subclass_is_reachable_by_name(folder: Path) -> None:
    step = Mult(infra={"backend": "Recording", "folder": folder, "parts": 3})
    assert isinstance(step.infra, Recording)
    assert step.infra.parts == 3


def test_unknown_backend_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'Nope' is not a known backend"):
        Mult(infra={"backend": "Nope"})


def test_backend_living_in_assay_backends_asks_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "assay_backends", None)  # makes the import fail
    monkeypatch.delitem(Backend._registry, "ProcessPool", raising=False)
    with pytest.raises(Exception, match="pip install assay-backends"):
        Mult(infra={"backend": "ProcessPool", "folder": "x"})


def test_bad_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        Cached(mode="sometimes")  # type: ignore[arg-type]


def test_backend_instance_is_copied_not_shared(folder: Path) -> None:
    infra = Cached(folder=folder)
    a, b = Mult(infra=infra), Mult(coeff=3, infra=infra)
    assert a.infra is not b.infra
    assert a.infra == b.infra == infra


def test_backend_serializes_with_its_name(folder: Path) -> None:
    data = Cached(folder=folder, keep_in_ram=True).model_dump(mode="json")
    assert data["backend"] == "Cached"
    assert Backend.model_validate(data) == Cached(folder=folder, keep_in_ram=True)


def test_infra_dict_without_backend_key_round_trips(folder: Path) -> None:
    # As in exca, an infra dict without "backend" is the base Backend (runs inline, caches).
    step = Mult(infra={"folder": str(folder)})
    assert type(step.infra) is Backend
    assert step.run(2.0) == 4.0
    data = step.model_dump(mode="json")
    assert data["infra"]["backend"] == "Backend"
    again = Mult.model_validate(data)
    assert again == step
    assert again.lookup(2.0).status == "success"


class _SharedBase(Backend):
    """A private base of executors (like the pools' common base in assay-backends)."""


def test_unknown_backend_error_lists_only_public_names() -> None:
    with pytest.raises(ValueError, match="is not a known backend") as info:
        Mult(infra={"backend": "Cahced"})
    assert "'Cached'" in str(info.value)
    assert "'_" not in str(info.value)


def test_custom_executor_runs_split_tasks_and_attaches_jobs(folder: Path) -> None:
    Recording.seen = []
    step = Mult(infra=Recording(folder=folder, parts=2))
    assert list(step.run_many([1, 2, 3, 4, 5])) == [2, 4, 6, 8, 10]
    assert Recording.seen == [3, 2]
    assert sorted(calls("Mult")) == [1, 2, 3, 4, 5]
    handle = step.lookup(5)
    assert handle.job() == ("job", "job-1", handle.paths.step_uid)
    refs = [json.loads(p.read_text()) for p in sorted(handle.paths.job_folder.iterdir())]
    assert len(refs) == 2  # one file per task, not per item
    (ref,) = [r for r in refs if handle.uid in r["uids"]]
    assert ref["ref"] == {"backend": "Recording", "job_id": "job-1"}
    assert len(ref["uids"]) == 2
    # the items are now cached: the executor is not called again
    Recording.seen = []
    assert list(step.run_many([1, 5])) == [2, 10]
    assert Recording.seen == []


def test_job_is_none_without_a_backend_job(folder: Path) -> None:
    step = Mult(infra={"backend": "Cached", "folder": folder})
    step.run(1.0)
    assert step.lookup(1.0).job() is None
    assert Mult().lookup(1.0).job() is None


def test_item_task_is_picklable_and_runs_in_a_fresh_store(folder: Path) -> None:
    import cloudpickle

    seen: list[ItemTask] = []

    class Deferred(Backend):
        def _execute(self, tasks: list[ItemTask]) -> None:
            for task in tasks:
                copy = cloudpickle.loads(cloudpickle.dumps(task))
                assert copy.store is None  # the caller's memory stays behind
                seen.append(copy)
                copy()

    step = Mult(coeff=3, infra=Deferred(folder=folder))
    assert step.run(2.0) == 6.0
    assert len(seen) == 1
    assert step.lookup(2.0).status == "success"


def test_infra_default_fields_fill_a_partial_override(folder: Path) -> None:
    from assay_steps import Step

    class WithDefault(Step):
        infra: Backend | None = Cached(folder=folder, keep_in_ram=True)

        def _run(self, value: int) -> int:
            return value

    step = WithDefault(infra={"backend": "Cached", "mode": "force"})
    assert step.infra is not None
    assert step.infra.folder == folder  # from the class default
    assert step.infra.keep_in_ram
    assert step.infra.mode == "force"  # from the override
    assert WithDefault(infra={"backend": "Cached", "keep_in_ram": False}).infra.keep_in_ram is False  # type: ignore[union-attr]
    assert WithDefault().infra is not WithDefault().infra  # never shared between steps
