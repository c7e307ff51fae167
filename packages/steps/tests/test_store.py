"""Cache entries: atomic, checksummed, never returned when torn or corrupted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_steps import Step, _store
from steps_testkit import Mult, calls


class Big(Step):
    def _run(self, value: int) -> np.ndarray:
        CALLS_BIG.append(value)
        return np.arange(value, dtype=np.float64)


CALLS_BIG: list[int] = []


def infra(folder: Path, mode: str = "cached") -> dict[str, Any]:
    return {"backend": "Cached", "folder": folder, "mode": mode}


def entry(step: Step, value: Any) -> Path:
    handle = step.lookup(value)
    (found,) = handle.paths.cache_folder.glob(f"{handle.uid}.*")
    return found


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [truncate, flip, empty])
def test_damaged_pickle_entry_is_recomputed(folder: Path, damage: Any) -> None:
    Mult(infra=infra(folder)).run(3.0)
    damage(entry(Mult(infra=infra(folder)), 3.0))
    fresh = Mult(infra=infra(folder))
    assert fresh.lookup(3.0).status is None  # corrupt counts as missing
    assert fresh.run(3.0) == 6.0
    assert calls("Mult") == [3.0, 3.0]
    assert Mult(infra=infra(folder)).run(3.0) == 6.0  # repaired on disk


@pytest.mark.parametrize("damage", [truncate, flip, empty])
def test_damaged_array_entry_is_recomputed(folder: Path, damage: Any) -> None:
    CALLS_BIG.clear()
    Big(infra=infra(folder)).run(1000)
    path = entry(Big(infra=infra(folder)), 1000)
    assert path.suffix == ".npy"
    damage(path)
    result = Big(infra=infra(folder)).run(1000)
    np.testing.assert_array_equal(result, np.arange(1000.0))
    assert CALLS_BIG == [1000, 1000]


def test_flipped_byte_inside_array_data_is_detected(folder: Path) -> None:
    CALLS_BIG.clear()
    Big(infra=infra(folder)).run(1000)
    flip(entry(Big(infra=infra(folder)), 1000), offset=400)  # in the data, not the trailer
    np.testing.assert_array_equal(Big(infra=infra(folder)).run(1000), np.arange(1000.0))
    assert CALLS_BIG == [1000, 1000]


def test_large_array_is_checked_by_size_header_and_sample(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "FULL_VERIFY_BYTES", 1024)
    monkeypatch.setattr(_store, "_SAMPLE", 256)
    CALLS_BIG.clear()
    Big(infra=infra(folder)).run(4096)
    flip(entry(Big(infra=infra(folder)), 4096), offset=200)  # inside the head sample
    Big(infra=infra(folder)).run(4096)
    assert CALLS_BIG == [4096, 4096]


@pytest.mark.parametrize("damage", [truncate, flip])
def test_damaged_entry_in_read_only_mode_raises(folder: Path, damage: Any) -> None:
    Mult(infra=infra(folder)).run(3.0)
    damage(entry(Mult(infra=infra(folder)), 3.0))
    with pytest.raises(RuntimeError, match=r"corrupt.*read-only"):
        Mult(infra=infra(folder, "read-only")).run(3.0)
    assert calls("Mult") == [3.0]


def test_result_of_a_corrupt_entry_raises(folder: Path) -> None:
    Mult(infra=infra(folder)).run(3.0)
    flip(entry(Mult(infra=infra(folder)), 3.0))
    with pytest.raises(RuntimeError, match="corrupt"):
        Mult(infra=infra(folder)).lookup(3.0).result()


def test_no_temporary_files_are_left_behind(folder: Path) -> None:
    step = Mult(infra=infra(folder))
    list(step.run_many(range(20)))
    hidden = [p for p in folder.rglob("*") if p.name.startswith(".")]
    leftovers = [p for p in hidden if p.name != ".assay-cache"]  # the marker of an assay folder
    assert leftovers == []
    assert list(step.lookup(0).paths.lock_folder.iterdir()) == []  # locks released


def test_a_failed_write_leaves_the_previous_entry_intact(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assay_steps import _durable

    Mult(infra=infra(folder)).run(3.0)
    before = entry(Mult(infra=infra(folder)), 3.0).read_bytes()

    def broken_write(fd: int, data: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(_durable.os, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        Mult(infra=infra(folder, "force")).run(3.0)
    monkeypatch.undo()
    assert entry(Mult(infra=infra(folder)), 3.0).read_bytes() == before
    assert not [p for p in folder.rglob(".*.tmp")]


@pytest.mark.parametrize(
    ("fsync", "syncs", "fsyncs"), [("batch", 1, 0), ("item", 0, 2), ("off", 0, 0)]
)
def test_fsync_modes(
    folder: Path, monkeypatch: pytest.MonkeyPatch, fsync: str, syncs: int, fsyncs: int
) -> None:
    from assay_steps import _durable

    seen: dict[str, int] = {"sync": 0, "fsync": 0}
    real_fsync = os.fsync

    def count_sync(path: Any) -> None:
        seen["sync"] += 1

    def count_fsync(fd: int) -> None:
        seen["fsync"] += 1
        real_fsync(fd)

    monkeypatch.setattr(_store, "sync_filesystem", count_sync)
    monkeypatch.setattr(_durable.os, "fsync", count_fsync)
    step = Mult(infra={"backend": "Cached", "folder": folder, "fsync": fsync})
    assert list(step.run_many([1.0, 2.0])) == [2.0, 4.0]
    monkeypatch.undo()
    assert seen["sync"] == syncs  # one flush per task, not per item
    assert seen["fsync"] >= fsyncs  # every entry (and its folder) when asked
    if fsyncs == 0:
        assert seen["fsync"] == 0
    assert Mult(infra=infra(folder)).run(2.0) == 4.0
    assert calls("Mult") == [1.0, 2.0]


def test_lookup_is_independent_of_the_number_of_entries(folder: Path) -> None:
    # No index: a lookup touches the entry's own file names only.
    step = Mult(infra=infra(folder))
    list(step.run_many(range(50)))
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    import builtins

    real_builtin_open = builtins.open

    def spy_builtin(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real_builtin_open(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "open", spy)
        mp.setattr(builtins, "open", spy_builtin)
        assert Mult(infra=infra(folder)).run(7) == 14
    uid = step.lookup(7).uid
    assert opened
    assert all(uid in path for path in opened)


SCALARS = ["text é", b"\x00bytes", 7, 2**80, -0.0, float("inf"), True, None, 1 + 2j]


echoed: list[int] = []


class Echo(Step):
    def _run(self, value: int) -> Any:
        echoed.append(value)
        return SCALARS[value]


@pytest.mark.parametrize("index", range(len(SCALARS)))
def test_builtin_scalar_results_come_back_with_their_type(folder: Path, index: int) -> None:
    # Stored with the standard pickler (cloudpickle is for code and closures).
    # Most of these entries are shorter than the lock file they are written into.
    value = SCALARS[index]
    echoed.clear()
    Echo(infra=infra(folder)).run(index)
    back = Echo(infra=infra(folder)).run(index)  # a new instance reads the entry from disk
    assert echoed == [index]  # read back intact, not recomputed
    assert type(back) is type(value)
    assert back == value
    assert str(back) == str(value)  # -0.0 stays -0.0


class MakeArray(Step):
    def _run(self, value: Any) -> np.ndarray:
        return np.asarray(value)


@pytest.mark.parametrize("value", [1.5, 7, True, np.float32(2.5)])
def test_zero_dimensional_array_results_keep_their_shape(folder: Path, value: Any) -> None:
    expected = np.asarray(value)
    first = MakeArray(infra=infra(folder)).run(value)
    back = MakeArray(infra=infra(folder)).run(value)  # a new instance reads the entry from disk
    for result in (first, back):
        assert result.shape == expected.shape == ()
        assert result.dtype == expected.dtype
        assert result.item() == expected.item()
