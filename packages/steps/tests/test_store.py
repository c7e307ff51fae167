"""Cache entries: checksummed frames in segments, never returned when torn or corrupted."""

from __future__ import annotations

import builtins
import collections
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_steps import Step, _arrays, _catalog, _durable, _frames, _segments, _store
from steps_testkit import Fail, Mult, calls, infra
from store_testkit import (
    Frame,
    all_frames,
    array_file_of,
    as_a_new_process,
    cut,
    flip,
    frame_of,
    frames_in,
    patch_bytes,
    segments,
)


class Big(Step):
    def _run(self, value: int) -> np.ndarray:
        CALLS_BIG.append(value)
        return np.arange(value, dtype=np.float64)


CALLS_BIG: list[int] = []
INLINE, IN_A_FILE = 1000, 10000  # 8 kB: inside its frame; 80 kB: a .npy file of its own


@pytest.fixture(autouse=True)
def _reset_big() -> None:
    CALLS_BIG.clear()


# Damage done to an entry's frame, inside the segment file.


def truncate(frame: Frame) -> None:
    cut(frame.segment, frame.offset + frame.length // 2)


def flip_value(frame: Frame) -> None:
    flip(frame.segment, frame.value_offset + frame.value_len // 2)


def empty(frame: Frame) -> None:
    cut(frame.segment, 0)


# Damage done to a large array's own file.


def truncate_file(path: Path) -> None:
    cut(path, path.stat().st_size // 2)


def flip_trailer(path: Path) -> None:
    flip(path, -20)


def empty_file(path: Path) -> None:
    cut(path, 0)


@pytest.mark.parametrize("damage", [truncate, flip_value, empty])
def test_damaged_pickle_entry_is_recomputed(folder: Path, damage: Callable[[Frame], None]) -> None:
    Mult(infra=infra(folder)).run(3.0)
    damage(frame_of(Mult(infra=infra(folder)).lookup(3.0)))
    fresh = Mult(infra=infra(folder))
    assert fresh.lookup(3.0).status is None  # corrupt counts as missing
    assert fresh.run(3.0) == 6.0
    assert calls("Mult") == [3.0, 3.0]
    assert Mult(infra=infra(folder)).run(3.0) == 6.0  # repaired on disk
    as_a_new_process()
    assert Mult(infra=infra(folder)).run(3.0) == 6.0  # found by a scan of the files too
    assert calls("Mult") == [3.0, 3.0]


@pytest.mark.parametrize("damage", [truncate, flip_value, empty])
def test_damaged_inline_array_entry_is_recomputed(
    folder: Path, damage: Callable[[Frame], None]
) -> None:
    Big(infra=infra(folder)).run(INLINE)
    frame = frame_of(Big(infra=infra(folder)).lookup(INLINE))
    assert frame.kind == 3  # inline array
    damage(frame)
    np.testing.assert_array_equal(Big(infra=infra(folder)).run(INLINE), np.arange(INLINE * 1.0))
    assert CALLS_BIG == [INLINE, INLINE]


@pytest.mark.parametrize("damage", [truncate_file, flip_trailer, empty_file])
def test_damaged_array_file_is_recomputed(folder: Path, damage: Callable[[Path], None]) -> None:
    Big(infra=infra(folder)).run(IN_A_FILE)
    path = array_file_of(Big(infra=infra(folder)).lookup(IN_A_FILE))
    assert path.suffix == ".npy"
    damage(path)
    result = Big(infra=infra(folder)).run(IN_A_FILE)
    np.testing.assert_array_equal(result, np.arange(IN_A_FILE * 1.0))
    assert CALLS_BIG == [IN_A_FILE, IN_A_FILE]


def test_flipped_byte_inside_inline_array_data_is_detected(folder: Path) -> None:
    Big(infra=infra(folder)).run(INLINE)
    frame = frame_of(Big(infra=infra(folder)).lookup(INLINE))
    flip(frame.segment, frame.value_offset + frame.value_len - 100, 0x01)  # data, not header
    np.testing.assert_array_equal(Big(infra=infra(folder)).run(INLINE), np.arange(INLINE * 1.0))
    assert CALLS_BIG == [INLINE, INLINE]


def test_flipped_byte_inside_array_file_data_is_detected(folder: Path) -> None:
    Big(infra=infra(folder)).run(IN_A_FILE)
    flip(array_file_of(Big(infra=infra(folder)).lookup(IN_A_FILE)), 400, 0x01)
    result = Big(infra=infra(folder)).run(IN_A_FILE)
    np.testing.assert_array_equal(result, np.arange(IN_A_FILE * 1.0))
    assert CALLS_BIG == [IN_A_FILE, IN_A_FILE]


def test_large_array_is_checked_by_size_header_and_sample(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_arrays, "FULL_VERIFY_BYTES", 1024)
    monkeypatch.setattr(_arrays, "_SAMPLE", 256)
    Big(infra=infra(folder)).run(20000)
    path = array_file_of(Big(infra=infra(folder)).lookup(20000))
    flip(path, 200)  # inside the head sample
    Big(infra=infra(folder)).run(20000)
    assert CALLS_BIG == [20000, 20000]
    path = array_file_of(Big(infra=infra(folder)).lookup(20000))  # the new entry's file
    cut(path, path.stat().st_size - 8)  # a size that does not add up
    Big(infra=infra(folder)).run(20000)
    assert CALLS_BIG == [20000, 20000, 20000]


def _checksum_offset(frame: Frame) -> int:
    """Where the frame's 16-byte checksum lies: after the value, or else in the header."""
    if frame.value_offset + frame.value_len + 16 == frame.offset + frame.length:
        return frame.value_offset + frame.value_len
    return frame.offset + _frames.HEADER.size - 16


@pytest.mark.parametrize(
    "where",
    ["magic", "kind", "uid length", "stamp", "value length", "uid", "value", "checksum"],
)
def test_a_bit_flip_anywhere_in_an_entrys_frame_is_detected(folder: Path, where: str) -> None:
    Mult(infra=infra(folder)).run(3.0)
    frame = frame_of(Mult(infra=infra(folder)).lookup(3.0))
    offset = {
        "magic": frame.offset + 1,
        "kind": frame.offset + 4,
        "uid length": frame.offset + 6,
        "stamp": frame.offset + 8,
        "value length": frame.offset + 16,
        "uid": frame.value_offset - 3,
        "value": frame.value_offset + 2,
        "checksum": _checksum_offset(frame) + 7,
    }[where]
    flip(frame.segment, offset, 0x01)  # one bit
    with pytest.raises(RuntimeError, match=r"corrupt.*read-only"):
        Mult(infra=infra(folder, "read-only")).run(3.0)
    as_a_new_process()
    assert Mult(infra=infra(folder)).run(3.0) == 6.0
    assert calls("Mult") == [3.0, 3.0]


@pytest.mark.parametrize("damage", [truncate, flip_value])
def test_damaged_entry_in_read_only_mode_raises(
    folder: Path, damage: Callable[[Frame], None]
) -> None:
    Mult(infra=infra(folder)).run(3.0)
    damage(frame_of(Mult(infra=infra(folder)).lookup(3.0)))
    with pytest.raises(RuntimeError, match=r"corrupt.*read-only"):
        Mult(infra=infra(folder, "read-only")).run(3.0)
    assert calls("Mult") == [3.0]


def test_damaged_array_file_in_read_only_mode_raises_naming_the_file(folder: Path) -> None:
    Big(infra=infra(folder)).run(IN_A_FILE)
    path = array_file_of(Big(infra=infra(folder)).lookup(IN_A_FILE))
    flip(path, 400)
    with pytest.raises(RuntimeError, match=r"corrupt.*read-only") as raised:
        Big(infra=infra(folder, "read-only")).run(IN_A_FILE)
    assert path.name in str(raised.value)
    assert CALLS_BIG == [IN_A_FILE]


def test_result_of_a_corrupt_entry_raises(folder: Path) -> None:
    Mult(infra=infra(folder)).run(3.0)
    flip_value(frame_of(Mult(infra=infra(folder)).lookup(3.0)))
    with pytest.raises(RuntimeError, match="corrupt"):
        Mult(infra=infra(folder)).lookup(3.0).result()


# ---------------------------------------------------------------- misattribution


class Named(Step):
    """Returns a text of the same length for every input from 100 to 999."""

    def _run(self, value: int) -> str:
        CALLS_NAMED.append(value)
        return f"value-{value:03d}"


class Full(Step):
    """Returns a large array (its own file) of the same size for every input."""

    def _run(self, value: int) -> np.ndarray:
        CALLS_NAMED.append(value)
        return np.full(IN_A_FILE, value, dtype=np.float64)


CALLS_NAMED: list[int] = []


@pytest.mark.parametrize("reader", ["same process", "new process"])
def test_a_frame_copied_over_another_items_frame_is_never_served_as_its_value(
    folder: Path, reader: str
) -> None:
    CALLS_NAMED.clear()
    step = Named(infra=infra(folder))
    assert list(step.run_many([101, 202])) == ["value-101", "value-202"]
    a, b = frame_of(step.lookup(101)), frame_of(step.lookup(202))
    assert a.length == b.length
    assert a.segment == b.segment
    patch_bytes(b.segment, b.offset, a.raw())  # item 101's frame, whole and valid, at 202's place
    if reader == "new process":
        as_a_new_process()
    fresh = Named(infra=infra(folder))
    assert fresh.lookup(202).status is None
    assert list(fresh.run_many([101, 202])) == ["value-101", "value-202"]
    assert CALLS_NAMED == [101, 202, 202]  # 202 computed again, 101 still served


def test_an_array_file_copied_over_another_items_file_is_never_served(folder: Path) -> None:
    CALLS_NAMED.clear()
    step = Full(infra=infra(folder))
    list(step.run_many([1, 2]))
    first, second = array_file_of(step.lookup(1)), array_file_of(step.lookup(2))
    assert first.stat().st_size == second.stat().st_size
    second.write_bytes(first.read_bytes())
    results = list(Full(infra=infra(folder)).run_many([1, 2]))
    assert [float(r[0]) for r in results] == [1.0, 2.0]
    assert CALLS_NAMED == [1, 2, 2]


def test_a_frame_whose_uid_bytes_are_changed_is_not_served_for_that_uid(folder: Path) -> None:
    # The checksum covers the uid: rewriting the uid bytes to another item's cannot pass.
    CALLS_NAMED.clear()
    step = Named(infra=infra(folder))
    list(step.run_many([101, 202]))
    a, b = frame_of(step.lookup(101)), frame_of(step.lookup(202))
    uid_at = a.value_offset - len(a.uid)
    patch_bytes(a.segment, uid_at, b.uid.encode())  # 101's value, now under 202's uid
    b_uid_at = b.value_offset - len(b.uid)
    patch_bytes(b.segment, b_uid_at, a.uid.encode())
    as_a_new_process()
    assert list(Named(infra=infra(folder)).run_many([101, 202])) == ["value-101", "value-202"]
    assert CALLS_NAMED == [101, 202, 101, 202]


# ---------------------------------------------------------------- writing


def test_no_temporary_files_are_left_behind(folder: Path) -> None:
    step = Mult(infra=infra(folder))
    list(step.run_many(range(20)))
    Big(infra=infra(folder)).run(IN_A_FILE)
    with pytest.raises(ValueError, match="boom"):
        Fail(infra=infra(folder)).run(-1)
    hidden = [p for p in folder.rglob("*") if p.name.startswith(".")]
    leftovers = [p for p in hidden if p.name != ".assay-cache"]  # the marker of an assay folder
    assert leftovers == []
    assert not list(folder.rglob("*.tmp"))
    assert not list(folder.rglob("*.claim"))  # every claim released


class _FullDisk:
    """Stands for ``os`` in the segment writer: a write stores half its bytes, then fails.

    As a disk filling up does: the first system call writes what fits, the next one fails
    with ENOSPC (without a file name).
    """

    def __init__(self) -> None:
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self.failed += 1
        os.write(fd, bytes(data[: max(1, len(data) // 2)]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        self.failed += 1
        os.pwrite(fd, bytes(data[: max(1, len(data) // 2)]), offset)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_leaves_the_previous_entry_intact(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Mult(infra=infra(folder)).run(3.0)
    (segment,) = segments(Mult(infra=infra(folder)).lookup(3.0).paths.entries_folder)
    before = segment.read_bytes()
    disk = _FullDisk()
    monkeypatch.setattr(_segments, "os", disk)
    with pytest.raises(OSError, match="No space left") as raised:
        Mult(infra=infra(folder, "force")).run(3.0)
    monkeypatch.undo()
    assert disk.failed
    assert raised.value.filename == str(segment)  # the error says which file
    assert segment.read_bytes() == before  # the torn frame was cut off
    assert not list(folder.rglob("*.tmp"))
    assert Mult(infra=infra(folder)).run(3.0) == 6.0
    as_a_new_process()
    assert Mult(infra=infra(folder, "read-only")).run(3.0) == 6.0
    assert calls("Mult") == [3.0, 3.0]  # the forced run computed it; nothing since


def test_a_failed_array_file_write_leaves_the_previous_entry_intact(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Big(infra=infra(folder)).run(IN_A_FILE)
    path = array_file_of(Big(infra=infra(folder)).lookup(IN_A_FILE))
    monkeypatch.setattr(_durable, "os", _FullDisk())
    with pytest.raises(OSError, match="No space left"):
        Big(infra=infra(folder, "force")).run(IN_A_FILE)
    monkeypatch.undo()
    assert not list(folder.rglob("*.tmp"))
    assert not [p for p in folder.rglob(".*") if p.name != ".assay-cache"]
    assert array_file_of(Big(infra=infra(folder)).lookup(IN_A_FILE)) == path
    as_a_new_process()
    result = Big(infra=infra(folder, "read-only")).run(IN_A_FILE)
    np.testing.assert_array_equal(result, np.arange(IN_A_FILE * 1.0))


class _Flushes:
    """Counts the flushes to stable storage, whichever call makes them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: collections.Counter[str] = collections.Counter()
        real_fsync, real_fdatasync = os.fsync, getattr(os, "fdatasync", os.fsync)

        def fsync(fd: int) -> None:
            self.seen["fsync"] += 1
            real_fsync(fd)

        def fdatasync(fd: int) -> None:
            self.seen["fdatasync"] += 1
            real_fdatasync(fd)

        def syncfs(path: Any) -> None:
            self.seen["syncfs"] += 1

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "fdatasync", fdatasync, raising=False)
        monkeypatch.setattr(_store, "sync_filesystem", syncfs)
        monkeypatch.setattr(_durable, "sync_filesystem", syncfs)

    def take(self) -> int:
        total = sum(self.seen.values())
        self.seen.clear()
        return total


@pytest.mark.parametrize("fsync", ["batch", "item", "off"])
def test_fsync_modes_flush_once_per_task_per_item_or_never(
    folder: Path, monkeypatch: pytest.MonkeyPatch, fsync: str
) -> None:
    flushes = _Flushes(monkeypatch)
    step = Mult(infra=infra(folder, fsync=fsync))
    assert list(step.run_many([1.0, 2.0])) == [2.0, 4.0]  # a new segment: its name too
    first = flushes.take()
    assert list(step.run_many([float(v) for v in range(3, 303)])) == [
        2.0 * v for v in range(3, 303)
    ]
    second = flushes.take()  # 300 items: two claimed chunks, one task
    monkeypatch.undo()
    if fsync == "batch":
        assert (first, second) == (1, 1)  # one flush per task, however many items
    elif fsync == "item":
        assert first >= 2
        assert second >= 300  # every frame as it is written
    else:
        assert (first, second) == (0, 0)
    as_a_new_process()
    assert Mult(infra=infra(folder, "read-only")).run(2.0) == 4.0


def test_a_task_seals_what_it_wrote(folder: Path) -> None:
    step = Mult(infra=infra(folder))
    list(step.run_many([1.0, 2.0, 3.0]))
    list(step.run_many([4.0]))
    kinds = [frame.kind for frame in all_frames(step.lookup(1.0).paths.entries_folder)]
    assert kinds == [1, 1, 1, 6, 1, 6]  # three results and a seal, one result and a seal


# ---------------------------------------------------------------- cost of a lookup


_COUNTED = ("open", "pread", "read", "stat", "lstat", "fstat", "scandir", "listdir")


def _system_calls_of(
    work: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, int], int]:
    """Return the system calls ``work`` made (by name) and the bytes it read with pread."""
    counts: collections.Counter[str] = collections.Counter()
    read = [0]
    with monkeypatch.context() as patch:
        for name in _COUNTED:
            real = getattr(os, name)

            def counting(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
                counts[_name] += 1
                found = _real(*args, **kw)
                if _name == "pread":
                    read[0] += len(found)
                return found

            patch.setattr(os, name, counting)
        real_open = builtins.open

        def counting_open(*args: Any, **kw: Any) -> Any:
            counts["builtins.open"] += 1
            return real_open(*args, **kw)

        patch.setattr(builtins, "open", counting_open)
        work()
    return dict(counts), read[0]


@pytest.mark.parametrize(
    ("process", "sizes"),
    # A new process that scans many frames also saves the index: both sizes do.
    [("warm", (20, 20000)), ("new", (5000, 20000))],
)
def test_lookup_costs_the_same_system_calls_whatever_the_number_of_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, process: str, sizes: tuple[int, int]
) -> None:
    # A folder changed a moment ago is listed again (a file system's clock ticks): that is
    # not a cost of the lookup, and depends on how long writing the folder took.
    monkeypatch.setattr(_catalog, "racy_seconds", lambda mtime_ns: 0.0)
    counts, read, folder_sizes = [], [], []
    for n in sizes:
        folder = tmp_path / str(n)
        list(Mult(infra=infra(folder)).run_many(range(n)))
        if process == "new":
            as_a_new_process()
        else:
            Mult(infra=infra(folder)).run(0)  # this process has read the folder once
        step = Mult(infra=infra(folder))
        found, bytes_read = _system_calls_of(lambda step=step: step.run(7), monkeypatch)
        counts.append(found)
        read.append(bytes_read)
        folder_sizes.append(
            sum(s.stat().st_size for s in segments(step.lookup(7).paths.entries_folder))
        )
        assert step.run(7) == 14
    assert counts[0] == counts[1]
    if process == "warm":
        # Not a scan of the folder: a block around the entry, however large the folder is.
        assert read[1] < folder_sizes[1] / 2
    assert calls("Mult") == [*range(sizes[0]), *range(sizes[1])]  # none computed by the lookups


def test_every_item_of_many_is_found_after_a_new_process_scan(folder: Path) -> None:
    values = list(range(3000))
    list(Mult(infra=infra(folder)).run_many(values))
    as_a_new_process()
    assert list(Mult(infra=infra(folder, "read-only")).run_many(values)) == [2 * v for v in values]
    assert len(calls("Mult")) == 3000


# ---------------------------------------------------------------- values


SCALARS = ["text é", b"\x00bytes", 7, 2**80, -0.0, float("inf"), True, None, 1 + 2j]


echoed: list[int] = []


class Echo(Step):
    def _run(self, value: int) -> Any:
        echoed.append(value)
        return SCALARS[value]


@pytest.mark.parametrize("index", range(len(SCALARS)))
def test_builtin_scalar_results_come_back_with_their_type(folder: Path, index: int) -> None:
    # Stored with the standard pickler (cloudpickle is for code and closures).
    value = SCALARS[index]
    echoed.clear()
    Echo(infra=infra(folder)).run(index)
    as_a_new_process()
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
    as_a_new_process()
    back = MakeArray(infra=infra(folder)).run(value)  # a new instance reads the entry from disk
    for result in (first, back):
        assert result.shape == expected.shape == ()
        assert result.dtype == expected.dtype
        assert result.item() == expected.item()


def test_a_frame_holds_its_item_uid_and_value(folder: Path) -> None:
    step = Mult(infra=infra(folder))
    step.run(3.0)
    frame = frame_of(step.lookup(3.0))
    assert frame.uid == step.lookup(3.0).uid
    assert frame.kind == 1  # a pickled result
    assert frames_in(frame.segment)[-1].kind == 6  # sealed


# ---------------------------------------------------------------- untrusted folders


def test_an_untrusted_folder_serves_arrays_and_refuses_pickles(folder: Path) -> None:
    from assay_steps._store import UntrustedEntryError

    Big(infra=infra(folder)).run(INLINE)  # inline in its frame
    Big(infra=infra(folder)).run(IN_A_FILE)  # a file of its own
    Mult(infra=infra(folder)).run(3.0)  # a pickle
    as_a_new_process()
    untrusted = infra(folder, "read-only", trust=False)
    np.testing.assert_array_equal(Big(infra=untrusted).run(INLINE), np.arange(INLINE * 1.0))
    np.testing.assert_array_equal(Big(infra=untrusted).run(IN_A_FILE), np.arange(IN_A_FILE * 1.0))
    with pytest.raises(UntrustedEntryError, match="trust=False"):
        Mult(infra=untrusted).run(3.0)
    assert calls("Mult") == [3.0]
    assert CALLS_BIG == [INLINE, IN_A_FILE]


def test_an_array_file_name_in_a_frame_cannot_lead_out_of_the_arrays_folder(
    tmp_path: Path,
) -> None:
    # A folder is read with trust=False because its content may be hostile: a frame (its
    # checksum is no secret) naming "../../elsewhere/x.npy" must not read a file elsewhere,
    # here a valid array file of the same item in another cache.
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    CALLS_NAMED.clear()
    Full(infra=infra(elsewhere)).run(7)
    other_file = array_file_of(Full(infra=infra(elsewhere)).lookup(7))
    handle = Big(infra=infra(here)).lookup(7)
    Big(infra=infra(here)).run(IN_A_FILE)  # this step's arrays folder exists
    arrays = handle.paths.entries_folder / "arrays"
    escape = os.path.relpath(other_file, arrays)
    assert escape.startswith("..")
    writer = _segments.SegmentWriter(str(handle.paths.entries_folder))
    writer.append(_frames.ARRAY_FILE, handle.uid, escape.encode(), stamp=2**62, fsync=False)
    as_a_new_process()
    with pytest.raises(RuntimeError, match="corrupt"):
        Big(infra=infra(here, "read-only", trust=False)).run(7)
