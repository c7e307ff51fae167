"""The storage failing is never an item's cached error: once fixed, a plain rerun computes it.

A step whose own work hits a full disk (or a quota, an I/O error, a read-only file system)
raises that ``OSError`` and caches nothing; a failed write of an entry names the entry's file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from assay_steps import Cached, Chain, Step, _claims, _durable, _segments
from steps_testkit import Add, cached

STORAGE = [errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS]
#: While this holds an errno, Saves fails writing its output with it (the disk is "full").
FULL: list[int] = []


class Saves(Step):
    """Writes its output file itself, as a step saving a checkpoint would."""

    def _run(self, value: int) -> int:
        if FULL:
            raise OSError(FULL[0], os.strerror(FULL[0]), f"checkpoint-{value}.pt")
        return value * 10


@pytest.fixture(autouse=True)
def _disk_has_room() -> Any:
    FULL.clear()
    yield
    FULL.clear()


@pytest.mark.parametrize("code", STORAGE, ids=errno.errorcode.get)
def test_a_storage_failure_of_the_step_is_not_cached_and_a_plain_rerun_computes_it(
    folder: Path, code: int
) -> None:
    FULL.append(code)
    with pytest.raises(OSError, match=r"checkpoint-1\.pt") as raised:
        list(Saves(infra=cached(folder)).run_many([1, 2]))
    assert raised.value.errno == code
    step = Saves(infra=cached(folder))
    assert [step.lookup(v).status for v in (1, 2)] == [None, None]  # no error entry
    assert not list(step.lookup(1).paths.claims_folder.glob("*.claim"))  # no claim left
    FULL.clear()  # space is freed
    assert list(Saves(infra=cached(folder)).run_many([1, 2])) == [10, 20]


def test_a_storage_failure_inside_a_chain_is_not_cached_for_the_chain(folder: Path) -> None:
    def chain() -> Chain:
        return Chain(steps=[Saves(), Add(x=1, infra=Cached())], infra=cached(folder))

    FULL.append(errno.ENOSPC)
    with pytest.raises(OSError, match="No space left"):
        list(chain().run_many([1, 2]))
    assert [chain().lookup(v).status for v in (1, 2)] == [None, None]
    FULL.clear()
    assert list(chain().run_many([1, 2])) == [11, 21]


def test_another_oserror_of_the_step_is_still_its_cached_error(folder: Path) -> None:
    class Reads(Step):
        def _run(self, value: int) -> int:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "data.csv")

    with pytest.raises(FileNotFoundError):
        Reads(infra=cached(folder)).run(1)
    assert Reads(infra=cached(folder)).lookup(1).status == "error"


class _FullDisk:
    """Stands for ``os`` in one module of the write path: every write fails with ENOSPC."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # no file name, as the system

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(self, fd: int, *args: Any, **kwargs: Any) -> Any:
        return _FullFile(os.fdopen(fd, *args, **kwargs))


class _FullFile:
    """A file object whose writes fail with ENOSPC (without a file name, as the system's)."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *args: Any) -> None:
        self.file.close()

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("module", [_segments, _claims], ids=["entry", "claim"])
def test_a_failed_write_names_the_file_it_could_not_write(
    folder: Path, monkeypatch: pytest.MonkeyPatch, module: Any
) -> None:
    assert Saves(infra=cached(folder)).run(1) == 10  # the folder and its config.json exist
    monkeypatch.setattr(module, "os", _FullDisk())
    with pytest.raises(OSError, match="No space left") as raised:
        Saves(infra=cached(folder)).run(3)
    monkeypatch.undo()
    entry = Saves(infra=cached(folder)).lookup(3)
    assert raised.value.errno == errno.ENOSPC
    folder_of = entry.paths.segments_folder if module is _segments else entry.paths.claims_folder
    assert raised.value.filename is not None
    assert Path(raised.value.filename).parent == folder_of
    assert str(folder_of) in str(raised.value)
    assert entry.status is None
    assert not list(folder.rglob("*.tmp"))
    assert not list(folder.rglob("*.claim"))
    assert Saves(infra=cached(folder)).run(3) == 30


def test_a_failed_write_of_a_large_array_names_its_file(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    class Ramp(Step):
        def _run(self, value: int) -> Any:
            return np.arange(value, dtype=np.float64)

    assert Ramp(infra=cached(folder)).run(10).shape == (10,)  # config.json, small arrays inline
    monkeypatch.setattr(_durable, "os", _FullDisk())
    with pytest.raises(OSError, match="No space left") as raised:
        Ramp(infra=cached(folder)).run(20000)
    monkeypatch.undo()
    handle = Ramp(infra=cached(folder)).lookup(20000)
    assert Path(raised.value.filename).parent == handle.paths.arrays_folder
    assert raised.value.filename.endswith(".npy")
    assert handle.status is None
    assert not list(folder.rglob("*.tmp"))
    assert Ramp(infra=cached(folder)).run(20000).shape == (20000,)
