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
from assay_steps import Cached, Chain, Step, _durable, _locks
from steps_testkit import Add

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


def cached(folder: Path, **kwargs: Any) -> dict[str, Any]:
    return {"backend": "Cached", "folder": folder, **kwargs}


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
    assert list(step.lookup(1).paths.lock_folder.iterdir()) == []  # no lock left
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


@pytest.mark.parametrize("module", [_durable, _locks], ids=["entry", "lock"])
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
    name = f"{entry.uid}.pkl" if module is _durable else f"{entry.uid}.lock"
    folder_of = entry.paths.cache_folder if module is _durable else entry.paths.lock_folder
    assert raised.value.filename == str(folder_of / name)
    assert str(folder_of / name) in str(raised.value)
    assert entry.status is None
    assert Saves(infra=cached(folder)).run(3) == 30
