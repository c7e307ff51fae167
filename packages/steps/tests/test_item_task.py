"""What an executor may ask of an ItemTask: running items, job references, fresh reads."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from assay_steps import Backend, Cached, ItemTask, _store
from hypothesis import given
from hypothesis import strategies as st
from steps_testkit import FailOnce, Mult, calls


def task_for(step: Mult, values: list[float]) -> ItemTask:
    """The task the steps layer would hand to a backend for ``values``."""
    handle = step.lookup(values[0])
    uids = [step.lookup(value).uid for value in values]
    return ItemTask(step=step, prefix=(), paths=handle.paths, uids=uids, values=values)


def write_lock(task: ItemTask, uid: str, pid: int) -> None:
    task.paths.lock_folder.mkdir(parents=True, exist_ok=True)
    owner = {"host": socket.gethostname(), "pid": pid, "time": time.time()}
    (task.paths.lock_folder / f"{uid}.lock").write_text(json.dumps(owner))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---------------------------------------------------------------- running_uids


def test_running_uids_names_items_locked_by_a_live_process(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0, 2.0, 3.0])
    live, dead, free = task.uids
    write_lock(task, live, os.getpid())
    write_lock(task, dead, dead_pid())
    assert task.running_uids() == {live}
    assert free not in task.running_uids()


def test_running_uids_is_empty_before_anything_ran(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0, 2.0])
    assert task.running_uids() == set()


def test_running_uids_forgets_an_item_once_its_task_released_it(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    task()
    assert task.running_uids() == set()
    assert calls("Mult") == [1.0]


# ---------------------------------------------------------------- job_ref


def test_job_ref_reads_back_what_attach_job_wrote(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0, 2.0])
    first, _ = task.split(2)
    first.attach_job({"job_id": "17", "cluster": "local"})
    assert task.job_ref(task.uids[0]) == {"backend": "Cached", "job_id": "17", "cluster": "local"}
    assert task.job_ref(task.uids[1]) is None  # nothing attached to it


def test_job_ref_names_the_backend_given_to_attach_job(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    task.attach_job({"job_id": "3"}, backend="Elsewhere")
    assert task.job_ref(task.uids[0]) == {"backend": "Elsewhere", "job_id": "3"}


def test_job_ref_of_the_last_attached_job_wins(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    task.attach_job({"job_id": "1"})
    task.attach_job({"job_id": "2"})
    assert task.job_ref(task.uids[0]) == {"backend": "Cached", "job_id": "2"}


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'"text"'])
def test_unreadable_job_ref_is_none(folder: Path, content: bytes) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    task.paths.job_folder.mkdir(parents=True)
    (task.paths.job_folder / f"{task.uids[0]}.json").write_bytes(content)
    assert task.job_ref(task.uids[0]) is None


@pytest.mark.parametrize("uid", ["../escape", "a/b", "/abs", ".hidden", ""])
def test_job_ref_of_an_unsafe_uid_is_refused(folder: Path, uid: str) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    with pytest.raises(ValueError, match=r"item uid=.*not a safe file name"):
        task.job_ref(uid)


@given(ref=st.dictionaries(st.text(min_size=1).filter(lambda k: k != "backend"), st.integers()))
def test_job_ref_round_trips_any_json_object(
    tmp_path_factory: pytest.TempPathFactory, ref: dict[str, int]
) -> None:
    folder = tmp_path_factory.mktemp("cache")
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    task.attach_job(ref)
    assert task.job_ref(task.uids[0]) == {"backend": "Cached", **ref}


def test_lookup_job_uses_the_same_reference(folder: Path) -> None:
    step = Mult(infra=Cached(folder=folder))
    task = task_for(step, [1.0])
    task.attach_job({"job_id": "9"})
    # Cached cannot rebuild jobs, but the reference is found: no error, None.
    assert step.lookup(1.0).job() is None
    assert task.job_ref(step.lookup(1.0).uid) is not None


# ---------------------------------------------------------------- entries written elsewhere


class Elsewhere(Backend):
    """Runs each task as another process would: a pickled copy with its own entry store."""

    def _execute(self, tasks: list[ItemTask]) -> None:
        for task in tasks:
            pickle.loads(pickle.dumps(task))()


def test_an_entry_rewritten_elsewhere_is_not_served_stale(folder: Path, tmp_path: Path) -> None:
    def make(mode: str) -> FailOnce:
        infra = Elsewhere(folder=folder, mode=mode)  # type: ignore[arg-type]
        return FailOnce(marker_folder=str(tmp_path), infra=infra)

    with pytest.raises(ValueError, match="first attempt at 4"):
        make("cached").run(4)
    # retry first reads the cached error (and remembers it), then a copy recomputes the item
    # elsewhere: the result must come from the new entry, not from the remembered error.
    assert make("retry").run(4) == 4
    assert calls("FailOnce") == [4, 4]


def test_force_elsewhere_reads_the_new_entries(folder: Path, tmp_path: Path) -> None:
    def make(mode: str) -> FailOnce:
        infra = Elsewhere(folder=folder, mode=mode)  # type: ignore[arg-type]
        return FailOnce(marker_folder=str(tmp_path), infra=infra)

    with pytest.raises(ValueError, match="first attempt at 5"):
        make("cached").run(5)
    forced = make("force")
    with pytest.raises(ValueError, match="first attempt at 5"):
        forced.lookup(5).result()  # the instance has now read (and remembers) the error
    assert forced.run(5) == 5
    assert calls("FailOnce") == [5, 5]


def test_a_task_run_with_the_callers_store_is_not_read_back_from_disk(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_back: list[str] = []
    original = _store._read_pickle

    def counting(path: str) -> tuple[str, bytes]:
        found = original(path)  # a missing entry raises before it counts
        read_back.append(path)
        return found

    monkeypatch.setattr(_store, "_read_pickle", counting)
    step = Mult(infra=Cached(folder=folder))
    assert list(step.run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert read_back == []  # the caller's store saw every write: its memory is current
    assert list(Mult(infra=Cached(folder=folder)).run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert len(read_back) == 3  # a new instance does read the entries
