"""The catalog: the newest frame of each item wins, across segments and processes."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

from assay_steps import _frames
from assay_steps._catalog import Catalog
from assay_steps._frames import DELETED, RESULT
from assay_steps._segments import SegmentWriter
from steps_testkit import Mult, Stamped, calls, infra
from store_testkit import all_frames, as_a_new_process, frame, python, segments

FORCE_ELSEWHERE = """
import sys; sys.path.insert(0, sys.argv[1])
from steps_testkit import Stamped
if sys.argv[3] == "clear":
    step = Stamped(infra={"backend": "Cached", "folder": sys.argv[2]})
    step.lookup(int(sys.argv[4])).clear_cache()
else:
    step = Stamped(infra={"backend": "Cached", "folder": sys.argv[2], "mode": sys.argv[3]})
    print(step.run(int(sys.argv[4]))[1])
"""


def plant(folder: Path, name: str, data: bytes) -> None:
    path = folder / "segments" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def newest(folder: Path, uid: str) -> bytes | None:
    catalog = Catalog(str(folder))
    catalog.refresh()
    location = catalog.location(uid)
    return None if location is None else bytes(catalog.read(uid, location)[1])


# ---------------------------------------------------------------- the newest stamp wins


def test_the_highest_stamp_wins_whatever_the_order_of_the_segments(tmp_path: Path) -> None:
    plant(tmp_path, "0000000000000001-a-1-aaaaaaaa.seg", frame("item", b"newer", stamp=20))
    plant(tmp_path, "0000000000000002-b-2-bbbbbbbb.seg", frame("item", b"older", stamp=10))
    assert newest(tmp_path, "item") == b"newer"


def test_equal_stamps_go_to_the_later_segment_then_the_later_frame(tmp_path: Path) -> None:
    plant(tmp_path, "0000000000000001-a-1-aaaaaaaa.seg", frame("x", b"first", stamp=5))
    plant(
        tmp_path,
        "0000000000000002-b-2-bbbbbbbb.seg",
        frame("x", b"second", stamp=5) + frame("y", b"one", 5) + frame("y", b"two", 5),
    )
    assert newest(tmp_path, "x") == b"second"
    assert newest(tmp_path, "y") == b"two"


def test_a_clearing_frame_hides_older_entries_and_a_newer_one_shows_again(tmp_path: Path) -> None:
    plant(tmp_path, "0000000000000001-a-1-aaaaaaaa.seg", frame("x", b"old", stamp=1))
    plant(tmp_path, "0000000000000002-b-2-bbbbbbbb.seg", frame("x", b"", stamp=2, kind=DELETED))
    catalog = Catalog(str(tmp_path))
    catalog.refresh()
    assert catalog.location("x") is None
    assert catalog.cleared("x")
    plant(tmp_path, "0000000000000003-c-3-cccccccc.seg", frame("x", b"new", stamp=3))
    assert newest(tmp_path, "x") == b"new"


def test_a_forced_rewrite_by_another_process_wins(folder: Path) -> None:
    first = Stamped(infra=infra(folder)).run(1)
    assert first[1] == os.getpid()
    other = int(python(FORCE_ELSEWHERE, folder, "force", 1).stdout)
    assert other != os.getpid()
    assert Stamped(infra=infra(folder)).run(1)[1] == other  # this process, a new instance
    as_a_new_process()
    assert Stamped(infra=infra(folder, "read-only")).run(1)[1] == other
    handle = Stamped(infra=infra(folder)).lookup(1)
    assert len(segments(handle.paths.entries_folder)) == 2  # one per writing process
    assert calls("Stamped") == [1]


def test_a_clear_by_another_process_hides_the_entry_here(folder: Path) -> None:
    Stamped(infra=infra(folder)).run(2)
    python(FORCE_ELSEWHERE, folder, "clear", 2)
    assert Stamped(infra=infra(folder)).lookup(2).status is None
    assert Stamped(infra=infra(folder)).run(2)[1] == os.getpid()
    assert calls("Stamped") == [2, 2]


def test_clear_then_a_new_value_the_newest_wins(folder: Path) -> None:
    step = Stamped(infra=infra(folder))
    first = step.run(3)
    step.lookup(3).clear_cache()
    assert Stamped(infra=infra(folder)).lookup(3).status is None
    as_a_new_process()
    assert Stamped(infra=infra(folder)).lookup(3).status is None  # for a new process too
    second = Stamped(infra=infra(folder)).run(3)
    assert second != first
    as_a_new_process()
    assert Stamped(infra=infra(folder, "read-only")).run(3) == second
    kinds = [f.kind for f in all_frames(step.lookup(3).paths.entries_folder) if f.kind != 6]
    assert kinds == [RESULT, DELETED, RESULT]


def test_a_new_value_wins_over_one_stamped_by_a_clock_running_ahead(folder: Path) -> None:
    # Another machine whose clock is an hour ahead wrote the entry: a force here must still
    # supersede it, for this process and for any other.
    step = Mult(infra=infra(folder))
    handle = step.lookup(4.0)
    ahead = time.time_ns() + 3600 * 10**9
    writer = SegmentWriter(str(handle.paths.entries_folder))
    writer.append(RESULT, handle.uid, pickle.dumps(42), stamp=ahead, fsync=False)
    assert Mult(infra=infra(folder)).run(4.0) == 42
    assert Mult(infra=infra(folder, "force")).run(4.0) == 8.0
    assert Mult(infra=infra(folder)).run(4.0) == 8.0
    as_a_new_process()
    assert Mult(infra=infra(folder, "read-only")).run(4.0) == 8.0


# ---------------------------------------------------------------- refreshing


def test_a_refresh_takes_in_what_another_writer_appended(tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path))
    writer = SegmentWriter(str(tmp_path))
    writer.append(RESULT, "a", b"1", stamp=1, fsync=False)
    catalog.refresh()
    assert catalog.location("a") is not None
    assert catalog.location("b") is None
    writer.append(RESULT, "b", b"2", stamp=2, fsync=False)
    SegmentWriter(str(tmp_path)).append(RESULT, "c", b"3", stamp=3, fsync=False)
    catalog.refresh()
    assert catalog.location("b") is not None
    assert catalog.location("c") is not None


def test_a_segment_created_within_the_folders_timestamp_granularity_is_found(
    tmp_path: Path,
) -> None:
    # On a file system whose times are coarse (a second on Lustre, on many NFS servers), the
    # segments folder keeps the same modification time when another process creates its
    # segment within that second: the new segment must still be found.
    catalog = Catalog(str(tmp_path))
    SegmentWriter(str(tmp_path)).append(RESULT, "a", b"1", stamp=1, fsync=False)
    catalog.refresh()
    folder = tmp_path / "segments"
    seen = os.stat(folder)
    SegmentWriter(str(tmp_path)).append(RESULT, "b", b"2", stamp=2, fsync=False)
    os.utime(folder, ns=(seen.st_atime_ns, seen.st_mtime_ns))  # the same coarse time
    catalog.refresh()
    assert catalog.location("b") is not None


def test_a_step_sees_an_entry_another_process_wrote_within_the_same_second(folder: Path) -> None:
    step = Mult(infra=infra(folder))
    step.run(1.0)
    assert Mult(infra=infra(folder)).lookup(1.0).status == "success"  # this process looked
    handle = step.lookup(2.0)
    segments_folder = handle.paths.entries_folder / "segments"
    seen = os.stat(segments_folder)
    python(
        "import sys; sys.path.insert(0, sys.argv[1]); from steps_testkit import Mult;"
        "Mult(infra={'backend': 'Cached', 'folder': sys.argv[2]}).run(2.0)",
        folder,
    )
    os.utime(segments_folder, ns=(seen.st_atime_ns, seen.st_mtime_ns))
    assert Mult(infra=infra(folder, "read-only")).run(2.0) == 4.0
    assert calls("Mult") == [1.0]


def test_a_removed_segment_is_forgotten(tmp_path: Path) -> None:
    SegmentWriter(str(tmp_path)).append(RESULT, "a", b"1", stamp=1, fsync=False)
    other = SegmentWriter(str(tmp_path))
    other.append(RESULT, "b", b"2", stamp=2, fsync=False)
    catalog = Catalog(str(tmp_path))
    catalog.refresh()
    assert catalog.location("b") is not None
    (tmp_path / "segments" / other.name).unlink()
    catalog.refresh(relist=True)
    assert catalog.location("a") is not None
    assert catalog.location("b") is None


def test_the_catalog_records_the_kind_of_each_newest_frame(tmp_path: Path) -> None:
    writer = SegmentWriter(str(tmp_path))
    writer.append(RESULT, "a", b"1", stamp=1, fsync=False)
    writer.append(_frames.ERROR, "b", b"2", stamp=2, fsync=False)
    catalog = Catalog(str(tmp_path))
    catalog.refresh()
    from assay_steps._locations import kind_of

    assert kind_of(catalog.location("a") or 0) == RESULT
    assert kind_of(catalog.location("b") or 0) == _frames.ERROR
