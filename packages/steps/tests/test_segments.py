"""Segments: append-only files of frames, one writer each; torn and damaged frames skipped."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from assay_steps import _frames, _scan, _segments
from assay_steps._catalog import Catalog
from assay_steps._frames import RESULT, CorruptEntryError
from assay_steps._segments import SegmentWriter
from steps_testkit import Mult, calls
from store_testkit import as_a_new_process, cut, flip, frame, frames_in, patch_bytes, segments

MISSING, CORRUPT = "missing", "corrupt"


def plant(folder: Path, data: bytes, name: str = "0000000000000001-host-1-aaaaaaaa.seg") -> Path:
    """Write a segment file by hand."""
    path = folder / "segments" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read(folder: Path, *uids: str) -> list[bytes | str]:
    """What a new reader of ``folder`` finds for each uid (value, missing or corrupt)."""
    catalog = Catalog(str(folder))
    catalog.refresh()
    found: list[bytes | str] = []
    for uid in uids:
        location = catalog.location(uid)
        if location is None:
            found.append(MISSING)
            continue
        try:
            found.append(bytes(catalog.read(uid, location)[1]))
        except CorruptEntryError:
            found.append(CORRUPT)
    return found


def test_frames_appended_by_a_writer_are_found_by_a_new_reader(tmp_path: Path) -> None:
    writer = SegmentWriter(str(tmp_path))
    for i in range(5):
        writer.append(RESULT, f"item-{i}", f"value {i}".encode(), stamp=i + 1, fsync=False)
    writer.seal(fsync=False)
    assert read(tmp_path, *[f"item-{i}" for i in range(5)]) == [
        f"value {i}".encode() for i in range(5)
    ]
    (segment,) = segments(tmp_path)
    assert [f.kind for f in frames_in(segment)] == [RESULT] * 5 + [_frames.SEAL]


def test_a_torn_last_frame_is_ignored_and_the_frames_before_it_stay_readable(
    tmp_path: Path,
) -> None:
    a, b, c = frame("a", b"first"), frame("b", b"second"), frame("c", b"third value")
    for size in range(len(a + b) + 1, len(a + b + c)):  # every cut inside c
        folder = tmp_path / str(size)
        plant(folder, (a + b + c)[:size])
        assert read(folder, "a", "b", "c") == [b"first", b"second", MISSING], size


def test_a_frame_being_written_is_found_once_whole(tmp_path: Path) -> None:
    # A reader that looks while another process writes sees part of a frame, then all of it.
    a, b = frame("a", b"first"), frame("b", b"second" * 50)
    path = plant(tmp_path, a + b[:10])  # not even a whole header yet
    catalog = Catalog(str(tmp_path))
    catalog.refresh()
    assert catalog.location("a") is not None
    assert catalog.location("b") is None
    with path.open("ab") as f:
        f.write(b[10:100])  # the header, not the value
    catalog.refresh()
    assert catalog.location("b") is None
    with path.open("ab") as f:
        f.write(b[100:])
    catalog.refresh()
    location = catalog.location("b")
    assert location is not None
    assert bytes(catalog.read("b", location)[1]) == b"second" * 50


def _magic(data: bytearray, start: int, end: int) -> None:
    data[start] ^= 0xFF


def _huge_length(data: bytearray, start: int, end: int) -> None:
    data[start + 16 : start + 24] = (2**62).to_bytes(8, "little")  # the value length


def _short_length(data: bytearray, start: int, end: int) -> None:
    data[start + 16 : start + 24] = (3).to_bytes(8, "little")  # lands inside the value


def _zeros(data: bytearray, start: int, end: int) -> None:
    data[start:end] = bytes(end - start)


def _garbage_with_magic(data: bytearray, start: int, end: int) -> None:
    filler = (b"ASF1" + b"\x01\x00\x01\x00" + b"\xff" * 24) * ((end - start) // 32 + 1)
    data[start:end] = filler[: end - start]


@pytest.mark.parametrize(
    "damage", [_magic, _huge_length, _short_length, _zeros, _garbage_with_magic]
)
def test_damage_in_the_middle_of_a_segment_hides_only_that_frame(
    tmp_path: Path, damage: Callable[[bytearray, int, int], None]
) -> None:
    # The value of b holds the magic itself: a resync must verify what it finds.
    a, b, c = frame("a", b"first"), frame("b", b"ASF1" * 40), frame("c", b"third")
    data = bytearray(a + b + c)
    damage(data, len(a), len(a + b))
    plant(tmp_path, bytes(data))
    assert read(tmp_path, "a", "c") == [b"first", b"third"]
    assert read(tmp_path, "b")[0] in (MISSING, CORRUPT)


def test_a_flipped_value_in_the_middle_is_corrupt_and_the_frames_after_it_stay_readable(
    tmp_path: Path,
) -> None:
    a, b, c = frame("a", b"first"), frame("b", b"second"), frame("c", b"third")
    path = plant(tmp_path, a + b + c)
    flip(path, len(a) + len(b) - _frames.CHECKSUM - 2)  # in b's value
    assert read(tmp_path, "a", "b", "c") == [b"first", CORRUPT, b"third"]


def test_a_whole_frame_inside_another_frames_value_is_not_taken_for_an_entry(
    tmp_path: Path,
) -> None:
    # A result may hold any bytes, a frame of another item too: a scan skips values.
    inner = frame("x", b"not an entry", stamp=99)
    plant(tmp_path, frame("a", inner) + frame("b", b"second"))
    assert read(tmp_path, "a", "b", "x") == [inner, b"second", MISSING]


@pytest.mark.parametrize("block", [64, 97, 256, 4096])
def test_frames_across_scan_blocks_are_all_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(_scan, "SCAN_BLOCK", block)
    values = {f"item-{i}": bytes([i % 256]) * (i * 7 % 300) for i in range(60)}
    plant(tmp_path, b"".join(frame(uid, value) for uid, value in values.items()))
    assert read(tmp_path, *values) == list(values.values())


def test_a_segment_read_in_steps_finds_what_each_step_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_scan, "SCAN_BLOCK", 100)
    writer = SegmentWriter(str(tmp_path))
    catalog = Catalog(str(tmp_path))
    for i in range(30):
        writer.append(RESULT, f"item-{i}", b"v" * (i * 13 % 90), stamp=i + 1, fsync=False)
        if i % 7 == 0:
            catalog.refresh()
    catalog.refresh()
    for i in range(30):
        location = catalog.location(f"item-{i}")
        assert location is not None
        assert bytes(catalog.read(f"item-{i}", location)[1]) == b"v" * (i * 13 % 90)


# ---------------------------------------------------------------- failed writes


class _FullDisk:
    """Stands for ``os`` in the segment writer: a write stores part of its bytes, then fails."""

    def __init__(self, truncate_fails: bool = False) -> None:
        self.truncate_fails = truncate_fails

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        os.write(fd, bytes(data[: max(1, len(data) // 2)]))
        raise OSError(28, "No space left on device")

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        os.pwrite(fd, bytes(data[: max(1, len(data) // 2)]), offset)
        raise OSError(28, "No space left on device")

    def ftruncate(self, fd: int, size: int) -> None:
        if self.truncate_fails:
            raise OSError(5, "Input/output error")
        os.ftruncate(fd, size)


def test_the_frame_after_a_failed_append_is_where_the_catalog_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SegmentWriter(str(tmp_path))
    writer.append(RESULT, "a", b"first", stamp=1, fsync=False)
    monkeypatch.setattr(_segments, "os", _FullDisk())
    with pytest.raises(OSError, match="No space left"):
        writer.append(RESULT, "b", b"second" * 20, stamp=2, fsync=False)
    monkeypatch.undo()
    _, start, end = writer.append(RESULT, "c", b"third", stamp=3, fsync=False)
    (segment,) = segments(tmp_path)
    # The torn frame was cut off and the next frame follows the last whole one, no gap.
    assert [(f.uid, f.offset) for f in frames_in(segment)] == [("a", 0), ("c", start)]
    assert segment.stat().st_size == end
    assert read(tmp_path, "a", "b", "c") == [b"first", MISSING, b"third"]


def test_a_failed_append_in_a_step_leaves_the_next_entry_readable(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infra = {"backend": "Cached", "folder": folder}
    Mult(infra=infra).run(1.0)
    monkeypatch.setattr(_segments, "os", _FullDisk())
    with pytest.raises(OSError, match="No space left"):
        Mult(infra=infra).run(2.0)
    monkeypatch.undo()
    assert Mult(infra=infra).run(3.0) == 6.0  # space was freed
    assert Mult(infra={**infra, "mode": "read-only"}).run(3.0) == 6.0  # read in this process
    as_a_new_process()
    assert list(Mult(infra=infra).run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert calls("Mult") == [1.0, 2.0, 3.0, 2.0]


def test_a_segment_that_cannot_be_cut_back_is_left_for_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SegmentWriter(str(tmp_path))
    writer.append(RESULT, "a", b"first", stamp=1, fsync=False)
    monkeypatch.setattr(_segments, "os", _FullDisk(truncate_fails=True))
    with pytest.raises(OSError, match="No space left"):
        writer.append(RESULT, "b", b"second" * 20, stamp=2, fsync=False)
    monkeypatch.undo()
    writer.append(RESULT, "c", b"third", stamp=3, fsync=False)
    assert len(segments(tmp_path)) == 2  # the torn frame stays last in the first one
    assert read(tmp_path, "a", "b", "c") == [b"first", MISSING, b"third"]


# ---------------------------------------------------------------- writers


def test_a_writer_moves_to_a_new_segment_once_its_file_is_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_segments, "MAX_SEGMENT_BYTES", 300)
    writer = SegmentWriter(str(tmp_path))
    for i in range(20):
        writer.append(RESULT, f"item-{i}", b"v" * 50, stamp=i + 1, fsync=False)
    assert len(segments(tmp_path)) > 3
    assert all(s.stat().st_size < 300 + 200 for s in segments(tmp_path))
    assert read(tmp_path, *[f"item-{i}" for i in range(20)]) == [b"v" * 50] * 20


def _append_in_child(folder: str) -> None:
    _segments.writer_for(folder).append(RESULT, "child", b"from the child", stamp=2, fsync=False)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_a_segment_of_its_own(tmp_path: Path) -> None:
    folder = str(tmp_path)
    parent = _segments.writer_for(folder)
    parent.append(RESULT, "parent", b"from the parent", stamp=1, fsync=False)
    child = multiprocessing.get_context("fork").Process(target=_append_in_child, args=(folder,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    parent.append(RESULT, "parent-2", b"again", stamp=3, fsync=False)
    found = {s.name: [f.uid for f in frames_in(s)] for s in segments(tmp_path)}
    assert sorted(found.values()) == [["child"], ["parent", "parent-2"]]
    assert read(tmp_path, "parent", "child", "parent-2") == [
        b"from the parent",
        b"from the child",
        b"again",
    ]


def test_segment_names_are_unique_and_sort_by_creation(tmp_path: Path) -> None:
    names = [_segments.new_name() for _ in range(200)]
    assert len(set(names)) == 200
    assert names == sorted(names)
    assert all(n.endswith(".seg") and "/" not in n for n in names)


# ---------------------------------------------------------------- through a step


def test_a_step_whose_last_frame_was_torn_by_a_crash_recomputes_only_that_item(
    folder: Path,
) -> None:
    infra = {"backend": "Cached", "folder": folder}
    step = Mult(infra=infra)
    list(step.run_many([1.0, 2.0, 3.0]))
    (segment,) = segments(step.lookup(1.0).paths.entries_folder)
    third = next(f for f in frames_in(segment) if f.uid == step.lookup(3.0).uid)
    cut(segment, third.offset + third.length // 2)  # the crash: no seal, a torn frame
    as_a_new_process()
    assert list(Mult(infra=infra).run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert calls("Mult") == [1.0, 2.0, 3.0, 3.0]


def test_a_step_finds_the_frames_after_a_damaged_one(folder: Path) -> None:
    infra = {"backend": "Cached", "folder": folder}
    step = Mult(infra=infra)
    list(step.run_many([1.0, 2.0, 3.0]))
    (segment,) = segments(step.lookup(1.0).paths.entries_folder)
    second = next(f for f in frames_in(segment) if f.uid == step.lookup(2.0).uid)
    patch_bytes(segment, second.offset, b"XXXX")  # its magic is gone
    as_a_new_process()
    assert list(Mult(infra=infra).run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert calls("Mult") == [1.0, 2.0, 3.0, 2.0]
