"""A full disk (or a quota, an I/O error, a read-only file system) is not a failed run.

The storage failing while a run writes its outputs stops the sweep with one error naming the
folder, the file and the system's own words; the run stays pending, and a plain rerun once
space is freed computes it. Inline and on a process pool alike, and for the results index.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from assay_ops import _artifactfiles
from assay_steps import _frames
from assay_steps._store import EntryStore

from assay import Experiment, InfrastructureError, ProcessPool, Results, grid
from assay._index import ResultsIndex
from assay._schema import INDEX_NAME

OPS = """
import os

from assay_ops import operation


@operation
def saves(params, capture):
    capture.metric("x", params["x"])
    capture.artifact("weights.bin", bytes(range(256)) * 8)


@operation
def flaky(params, context, capture):
    if params["x"] == 3 and os.path.exists(context["bug"]):
        raise ValueError("x = 3 is refused")
    capture.artifact("weights.bin", bytes(range(256)) * 8)
"""

RUNS = 6


@pytest.fixture
def module(write_module: Callable[..., Any]) -> Any:
    return write_module(OPS, "assay_test_infrastructure")


class _FullDisk:
    """Stands for ``os`` in the artifact writer: past ``room`` files, flushing one fails.

    A real full disk fails the write or the flush of the file's data, with no file name.
    Worker processes forked while it is in place inherit it (each with the same room).
    """

    def __init__(self, room: int, code: int = errno.ENOSPC) -> None:
        self.room, self.code = room, code

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def fsync(self, fd: int) -> None:
        if self.room <= 0:
            raise OSError(self.code, os.strerror(self.code))
        self.room -= 1
        os.fsync(fd)


def _experiment(module: Any, folder: Path, backend: Any = None) -> Experiment:
    return Experiment(
        "disk",
        module.saves,
        grid(x=list(range(RUNS))),
        folder=folder,
        backend=backend,
        progress=False,
    )


def _error_entries(folder: Path) -> list[str]:
    """The uids of the cached errors in the experiment's cache: frames of the error kind.

    A frame is a header ``<4sBBHQQ>`` (magic, kind, 0, uid length, stamp, value length), the
    uid, the value and a checksum; a torn last frame is not one.
    """
    found = []
    for segment in (folder / "cache").glob("*/code-*/segments/*.seg"):
        data, offset = segment.read_bytes(), 0
        while offset + _frames.HEADER.size <= len(data):
            magic, kind, _, uid_len, _, value_len = _frames.HEADER.unpack_from(data, offset)[:6]
            end = offset + _frames.frame_length((kind, uid_len, 0, value_len))
            if magic != _frames.MAGIC or end > len(data):
                break
            if kind == _frames.ERROR:
                start = offset + _frames.HEADER.size
                found.append(data[start : start + uid_len].decode())
            offset = end
    found += [  # entries of the older layout, never written any more
        p.stem
        for p in (folder / "cache").rglob("cache/*.pkl")
        if p.read_bytes()[:8] == b"ASSAYE1\n"
    ]
    return found


@pytest.mark.parametrize(
    ("backend", "room"),
    [
        pytest.param(None, 2, id="inline"),
        # fork: the workers inherit the full disk the test put in place
        pytest.param(ProcessPool(max_jobs=2, start_method="fork"), 0, id="process-pool"),
    ],
)
def test_a_full_disk_leaves_the_run_pending_and_a_plain_rerun_computes_it(
    tmp_path: Path, module: Any, monkeypatch: pytest.MonkeyPatch, backend: Any, room: int
) -> None:
    folder = tmp_path / "exp"
    monkeypatch.setattr(_artifactfiles, "os", _FullDisk(room))
    with pytest.raises(InfrastructureError) as raised:
        _experiment(module, folder, backend).run()
    error = raised.value
    assert isinstance(error, OSError)
    assert error.errno == errno.ENOSPC
    message = str(error)
    assert repr(str(folder)) in message  # the folder
    assert str(folder / "runs") in message  # the file
    assert "weights.bin" in message
    assert os.strerror(errno.ENOSPC) in message  # the system's own words
    assert "left pending" in message
    assert "run again" in message
    counts = Results.load(folder).counts()
    assert counts.keys() <= {"success", "pending"}  # neither failed nor cancelled
    assert counts["pending"] == RUNS - room
    assert counts.get("success", 0) == room  # the runs before the disk filled are kept
    assert _error_entries(folder) == []  # nothing cached that would stick
    assert list(folder.rglob("*.tmp")) == []  # no half-written artifact

    monkeypatch.undo()  # space is freed
    results = _experiment(module, folder, backend).run()  # a plain rerun: no retry_failed
    assert results.counts() == {"success": RUNS}
    for record in results.records():
        (artifact,) = record.artifacts
        assert Path(artifact["path"]).read_bytes() == bytes(range(256)) * 8


@pytest.mark.parametrize("code", [errno.EDQUOT, errno.EIO, errno.EROFS], ids=errno.errorcode.get)
def test_other_storage_failures_are_not_failed_runs_either(
    tmp_path: Path, module: Any, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    folder = tmp_path / "exp"
    monkeypatch.setattr(_artifactfiles, "os", _FullDisk(1, code))
    with pytest.raises(InfrastructureError) as raised:
        _experiment(module, folder).run()
    assert raised.value.errno == code
    assert os.strerror(code) in str(raised.value)
    assert Results.load(folder).counts() == {"success": 1, "pending": RUNS - 1}
    monkeypatch.undo()
    assert _experiment(module, folder).run().counts() == {"success": RUNS}


def test_a_full_disk_while_caching_a_run_leaves_it_pending(
    tmp_path: Path, module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "exp"
    write = EntryStore.write_result
    written: list[str] = []

    def full(self: EntryStore, uid: str, value: Any, **kwargs: Any) -> None:
        if len(written) >= 2:  # the third run's record does not fit in the segment
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.paths.segments_folder))
        written.append(uid)
        write(self, uid, value, **kwargs)

    monkeypatch.setattr(EntryStore, "write_result", full)
    with pytest.raises(InfrastructureError) as raised:
        _experiment(module, folder).run()
    message = str(raised.value)
    assert repr(str(folder)) in message
    assert str(folder / "cache") in message
    assert os.strerror(errno.ENOSPC) in message
    assert Results.load(folder).counts() == {"success": 2, "pending": RUNS - 2}
    monkeypatch.undo()
    assert _experiment(module, folder).run().counts() == {"success": RUNS}


def test_a_failed_run_retried_on_a_full_disk_is_computed_by_a_plain_rerun(
    tmp_path: Path, module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, bug = tmp_path / "exp", tmp_path / "bug"
    bug.touch()

    def experiment() -> Experiment:
        space = grid(x=list(range(RUNS)))
        context = {"bug": str(bug)}
        return Experiment("retry", module.flaky, space, context=context, folder=folder)

    assert experiment().run().counts() == {"success": RUNS - 1, "failed": 1}
    bug.unlink()  # the cause of the failure is fixed
    monkeypatch.setattr(_artifactfiles, "os", _FullDisk(0))
    with pytest.raises(InfrastructureError):
        experiment().run(retry_failed=True)
    # its failed entry was dropped to retry it: the index must not keep calling it failed
    assert Results.load(folder).counts() == {"success": RUNS - 1, "pending": 1}
    monkeypatch.undo()
    assert experiment().run().counts() == {"success": RUNS}


def test_a_full_results_index_names_its_file_and_folder_and_loses_no_run(
    tmp_path: Path, module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "exp"
    store = ResultsIndex.store

    def full(self: ResultsIndex, outcomes: Any) -> None:
        # the index may not grow: SQLite answers "database or disk is full"
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages}")
        store(self, outcomes)

    monkeypatch.setattr(ResultsIndex, "store", full)
    with pytest.raises(InfrastructureError) as raised:
        _experiment(module, folder).run()
    message = str(raised.value)
    assert raised.value.errno == errno.ENOSPC
    assert repr(str(folder / INDEX_NAME)) in message
    assert "database or disk is full" in message
    assert "failed" not in Results.load(folder).counts()
    monkeypatch.undo()
    experiment = _experiment(module, folder)
    assert experiment.run().counts() == {"success": RUNS}
    assert experiment.last_summary is not None
    assert experiment.last_summary.cached == RUNS  # computed before: read back, not run again


def test_an_operation_own_failure_is_still_a_failed_run(
    tmp_path: Path, write_module: Callable[..., Any]
) -> None:
    source = """
    import errno
    from assay_ops import operation


    @operation
    def missing(params):
        raise FileNotFoundError(errno.ENOENT, "no such file", "data.csv")
    """
    module = write_module(source, "assay_test_infrastructure_own")
    results = Experiment(
        "own", module.missing, grid(x=[1, 2]), folder=tmp_path / "exp", progress=False
    ).run()
    assert results.counts() == {"failed": 2}
