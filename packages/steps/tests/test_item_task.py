"""What an executor may ask of an ItemTask: running items, job references, fresh reads."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from assay_steps import Backend, Cached, ItemTask, _catalog
from hypothesis import given
from hypothesis import strategies as st
from steps_testkit import FailOnce, Mult, Stamped, calls
from store_testkit import dead_pid


def task_for(step: Mult, values: list[float]) -> ItemTask:
    """The task the steps layer would hand to a backend for ``values``."""
    handle = step.lookup(values[0])
    uids = [step.lookup(value).uid for value in values]
    return ItemTask(step=step, prefix=(), paths=handle.paths, uids=uids, values=values)


def write_claim(task: ItemTask, uid: str, pid: int) -> None:
    """A claim on ``uid`` by process ``pid`` of this host, written by hand."""
    task.paths.claims_folder.mkdir(parents=True, exist_ok=True)
    owner = {"host": socket.gethostname(), "pid": pid, "time": time.time()}
    path = task.paths.claims_folder / f"{socket.gethostname()}-{pid}-test-{uid}.claim"
    path.write_text(json.dumps(owner) + "\n" + uid)


# ---------------------------------------------------------------- running_uids


def test_running_uids_names_items_claimed_by_a_live_process(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0, 2.0, 3.0])
    live, dead, free = task.uids
    write_claim(task, live, os.getpid())
    write_claim(task, dead, dead_pid())
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


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b'{"job_id": "1"}',
        b'{"ref": {"job_id": "1"}, "uids": "x"}',
        b'{"ref": [1], "uids": []}',
    ],
)
def test_unreadable_job_ref_is_none(folder: Path, content: bytes) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    task.paths.job_folder.mkdir(parents=True)
    (task.paths.job_folder / f"{task.uids[0]}.json").write_bytes(content)
    (task.paths.job_folder / "0000000000000001-abcd1234.json").write_bytes(content)
    assert task.job_ref(task.uids[0]) is None


def test_job_refs_are_one_file_per_task(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [float(v) for v in range(300)])
    task.attach_job({"job_id": "7"})
    (ref_file,) = task.paths.job_folder.iterdir()
    assert json.loads(ref_file.read_text()) == {
        "ref": {"backend": "Cached", "job_id": "7"},
        "uids": task.uids,
    }
    assert all(task.job_ref(uid) == {"backend": "Cached", "job_id": "7"} for uid in task.uids)


def test_the_newest_job_ref_of_an_item_wins_across_tasks(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0, 2.0, 3.0])
    task.attach_job({"job_id": "old"})
    first, rest = task.split(2)
    rest.attach_job({"job_id": "new"})
    assert [task.job_ref(uid)["job_id"] for uid in task.uids] == ["old", "old", "new"]  # type: ignore[index]
    first.attach_job({"job_id": "newest"})
    assert [task.job_ref(uid)["job_id"] for uid in task.uids] == ["newest", "newest", "new"]  # type: ignore[index]


def test_job_refs_of_the_same_modification_time_go_by_name(folder: Path) -> None:
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    task.attach_job({"job_id": "1"})
    task.attach_job({"job_id": "2"})
    files = sorted(task.paths.job_folder.iterdir())
    for path in files:  # a file system with coarse times: both written in one tick
        os.utime(path, ns=(10**18, 10**18))
    # Names start with the time of writing: the later file is the newer reference.
    assert json.loads(files[-1].read_text())["ref"]["job_id"] == "2"
    fresh = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    assert fresh.job_ref(fresh.uids[0]) == {"backend": "Cached", "job_id": "2"}


def test_a_job_ref_written_within_the_folders_timestamp_granularity_is_read(folder: Path) -> None:
    # As for segments: a folder whose time did not change (a coarse file system) may still
    # hold a new file.
    task = task_for(Mult(infra=Cached(folder=folder)), [1.0])
    task.attach_job({"job_id": "1"})
    seen = os.stat(task.paths.job_folder)
    assert task.job_ref(task.uids[0]) == {"backend": "Cached", "job_id": "1"}
    task.attach_job({"job_id": "2"})
    os.utime(task.paths.job_folder, ns=(seen.st_atime_ns, seen.st_mtime_ns))
    assert task.job_ref(task.uids[0]) == {"backend": "Cached", "job_id": "2"}


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
    original_read, original_kept = _catalog.Catalog.read, _catalog.Catalog.read_kept

    def counting_read(self: _catalog.Catalog, uid: str, location: int) -> Any:
        found = original_read(self, uid, location)
        read_back.append(uid)
        return found

    def counting_kept(self: _catalog.Catalog, uid: str, location: int) -> Any:
        found = original_kept(self, uid, location)
        if found is not None:
            read_back.append(uid)
        return found

    monkeypatch.setattr(_catalog.Catalog, "read", counting_read)
    monkeypatch.setattr(_catalog.Catalog, "read_kept", counting_kept)
    step = Mult(infra=Cached(folder=folder))
    assert list(step.run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert read_back == []  # the caller's store saw every write: its memory is current
    assert list(Mult(infra=Cached(folder=folder)).run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert sorted(read_back) == sorted(step.lookup(v).uid for v in (1.0, 2.0, 3.0))


class InAForkedProcess(Backend):
    """Runs each task in a child process (its own catalog and segment), as a pool does."""

    def _execute(self, tasks: list[ItemTask]) -> None:
        context = multiprocessing.get_context("fork")
        for task in tasks:
            child = context.Process(target=task)
            child.start()
            child.join(60)
            assert child.exitcode == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forced_rewrite_in_another_process_is_what_the_caller_returns(folder: Path) -> None:
    def make(mode: str) -> Stamped:
        return Stamped(infra=InAForkedProcess(folder=folder, mode=mode))  # type: ignore[arg-type]

    first = list(make("cached").run_many([1, 2]))
    forced = make("force")
    second = list(forced.run_many([1, 2]))
    assert all(pid != os.getpid() for _, pid, _ in second)  # computed in the child
    assert second != first
    assert list(forced.run_many([1, 2])) == second  # the instance serves what it wrote
    assert list(make("cached").run_many([1, 2])) == second  # and so does a new one


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_retry_in_another_process_is_what_the_caller_returns(
    folder: Path, tmp_path: Path
) -> None:
    def make(mode: str) -> FailOnce:
        infra = InAForkedProcess(folder=folder, mode=mode)  # type: ignore[arg-type]
        return FailOnce(marker_folder=str(tmp_path), infra=infra)

    with pytest.raises(ValueError, match="first attempt at 4"):
        make("cached").run(4)
    retried = make("retry")
    with pytest.raises(ValueError, match="first attempt at 4"):
        retried.lookup(4).result()  # the instance has read (and remembers) the error
    assert retried.run(4) == 4
    assert make("cached").run(4) == 4
