"""The Backend base class: dict dispatch, registration and the executor extension point."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import pytest
from assay_steps import Backend, Cached, ItemTask, StepPaths, _backend
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


def _offer(monkeypatch: pytest.MonkeyPatch, **points: str) -> None:
    """Make the backends entry-point group hold exactly ``points`` (name -> "module:Class")."""
    found = {
        name: metadata.EntryPoint(name=name, value=value, group=_backend.ENTRY_POINT_GROUP)
        for name, value in points.items()
    }
    monkeypatch.setattr(_backend, "_entry_points", lambda: found)


PLUGIN = """
from assay_steps import Backend


class PluginPool(Backend):
    workers: int = 1


class Misnamed(Backend):
    pass


NOT_A_BACKEND = 3
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of backends importable as ``assay_test_plugin``, not imported yet."""
    (tmp_path / "assay_test_plugin.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "assay_test_plugin"
    sys.modules.pop("assay_test_plugin", None)
    for name in ("PluginPool", "Misnamed"):
        Backend._registry.pop(name, None)


def test_the_entry_point_group_is_the_one_assay_backends_declares() -> None:
    assert _backend.ENTRY_POINT_GROUP == "assay.backends"
    # This layer names no executor of a layer above it.
    source = Path(_backend.__file__).read_text(encoding="utf-8")
    for name in ("assay_backends", "ProcessPool", "ThreadPool", "LocalProcess", "SubmititDebug"):
        assert name not in source


def test_backend_of_another_package_is_loaded_through_its_entry_point(
    plugin: str, monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    _offer(monkeypatch, PluginPool=f"{plugin}:PluginPool")
    assert "PluginPool" not in Backend._registry
    assert plugin not in sys.modules
    step = Mult(infra={"backend": "PluginPool", "folder": str(folder), "workers": 2})
    assert type(step.infra).__name__ == "PluginPool"
    assert step.infra.workers == 2  # type: ignore[attr-defined]
    assert plugin in sys.modules
    assert step.run(3.0) == 6.0
    # Its dump names the class, which the group offers: it loads back.
    assert Mult.model_validate(step.model_dump(mode="json")) == step


def test_unknown_backend_error_lists_the_entry_point_names_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _offer(monkeypatch, Elsewhere="some_module:Elsewhere")
    with pytest.raises(ValueError, match="'Nope' is not a known backend") as info:
        Mult(infra={"backend": "Nope"})
    assert "'Elsewhere'" in str(info.value)
    assert "'Cached'" in str(info.value)
    assert "'assay.backends' entry-point group" in str(info.value)
    assert "some_module" not in sys.modules  # listing the names imports nothing


def test_backend_of_a_package_not_installed_asks_to_install_assay_backends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # assay-steps installed alone: nothing in the group, nothing registered.
    _offer(monkeypatch)
    monkeypatch.delitem(Backend._registry, "ProcessPool", raising=False)
    with pytest.raises(ValueError, match="'ProcessPool' is not a known backend") as info:
        Mult(infra={"backend": "ProcessPool", "folder": "x"})
    assert "pip install assay-backends" in str(info.value)


def test_backend_whose_package_fails_to_import_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # The group (the installed metadata of assay-backends) offers ProcessPool, but its import
    # fails (a missing dependency, a broken install).
    if "ProcessPool" not in _backend._entry_points():
        pytest.skip("assay-backends is not installed with its entry points")
    monkeypatch.setitem(sys.modules, "assay_backends", None)  # makes the import fail
    monkeypatch.delitem(Backend._registry, "ProcessPool", raising=False)
    with pytest.raises(ImportError) as info:
        Mult(infra={"backend": "ProcessPool", "folder": "x"})
    message = str(info.value)
    assert "'ProcessPool' is offered by assay-backends" in message
    assert "'assay_backends:ProcessPool'" in message
    assert "importing it failed" in message
    assert "pip install assay-backends" in message


def test_backend_whose_module_is_missing_says_which_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _offer(monkeypatch, Gone="assay_no_such_module:Gone")
    with pytest.raises(ImportError, match=r"'Gone' is offered by .*'assay_no_such_module:Gone'"):
        Backend.resolve_class("Gone")


@pytest.mark.parametrize(
    ("name", "target", "expected"),
    [
        ("NotABackend", "NOT_A_BACKEND", "not a Backend subclass"),
        ("Renamed", "Misnamed", "expected the entry point to be named after its class"),
    ],
)
def test_entry_point_naming_no_backend_of_its_name_is_refused(
    plugin: str, monkeypatch: pytest.MonkeyPatch, name: str, target: str, expected: str
) -> None:
    _offer(monkeypatch, **{name: f"{plugin}:{target}"})
    with pytest.raises(ValueError, match=expected):
        Backend.resolve_class(name)


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
