"""`assay cache info`, `compact` and `migrate`: the upkeep of the packed cache store.

Compaction merges the segments of finished writers into one and never touches a live writer's;
an interrupted compaction loses nothing; migration packs the older one-file-per-entry layout
and leaves a corrupt old entry where it is.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash
from assay_steps import Cached, Step, StepPaths
from assay_steps import _compact as _maintenance
from assay_steps._arrays import _header_and_body, _sample
from assay_steps._catalog import forget_catalog
from assay_steps._claims import Claim
from assay_steps._compact import compact
from assay_steps._frames import ARRAY_FILE, RESULT
from assay_steps._inspect import count_entries, entries_folders, folder_info, packed_entries
from assay_steps._migrate import migrate
from assay_steps._store import CachedError, EntryStore

from assay._cli import main
from tests.kit.store import finish_writers

STEP = "Square-" + "ab" * 16
BIG = 20_000  # floats: an array file of its own (over 64 KiB)
_FORK = multiprocessing.get_context("fork")


def _paths(base: Path, code: str = "v1") -> StepPaths:
    return StepPaths(base, STEP, code)


def _in_child(target: Callable[..., None], *args: Any) -> None:
    """Run ``target`` in a forked process that exits: a writer that is finished."""
    process = _FORK.Process(target=target, args=args)
    process.start()
    process.join()
    assert process.exitcode == 0


def _write(paths: StepPaths, values: dict[str, Any]) -> None:
    store = EntryStore(paths)
    for uid, value in values.items():
        store.write_result(uid, value)
    store.sync()


def _clear(paths: StepPaths, uid: str) -> None:
    store = EntryStore(paths)
    store.clear(uid)
    store.sync()


def _read_all(paths: StepPaths, uids: list[str]) -> dict[str, Any]:
    forget_catalog(os.path.abspath(paths.entries_folder))  # a new reader, as a new process
    store = EntryStore(paths)
    return {uid: store.read(uid) for uid in uids}


def _segments_of(paths: StepPaths) -> list[str]:
    return sorted(p.name for p in paths.segments_folder.glob("*.seg"))


def _three_writers(base: Path) -> tuple[StepPaths, dict[str, Any]]:
    """Three finished writers: overlapping items (the last write wins), arrays of both sizes."""
    paths = _paths(base)
    expected: dict[str, Any] = {}
    for writer in range(3):
        values: dict[str, Any] = {f"item{i}": (writer, i) for i in range(4)}
        values[f"small{writer}"] = np.arange(10.0) + writer
        values[f"big{writer}"] = np.arange(float(BIG)) + writer
        _in_child(_write, paths, values)
        expected.update(values)
    return paths, expected


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return bool(a == b)


def _assert_values(paths: StepPaths, expected: dict[str, Any]) -> None:
    read = _read_all(paths, list(expected))
    for uid, value in expected.items():
        found = read[uid]
        assert found is not None, f"{uid} lost"
        assert found[0] == "success"
        assert _same(found[1], value), f"{uid}: {found[1]!r} != {value!r}"


@pytest.fixture(autouse=True)
def _no_writers_left() -> Iterator[None]:
    yield
    finish_writers()


# ---------------------------------------------------------------- compaction


def test_compacting_three_finished_writers_leaves_one_segment_and_every_value(
    tmp_path: Path,
) -> None:
    paths, expected = _three_writers(tmp_path)
    assert len(_segments_of(paths)) == 3
    before = folder_info(paths.entries_folder)
    assert before.entries == len(expected)
    assert before.dead_frames == 8  # item0..3 written three times: two superseded frames each
    report = compact(paths.entries_folder)
    assert len(report.merged) == 3
    assert _segments_of(paths) == [report.segment]
    assert report.entries == len(expected)
    assert report.freed > 0
    _assert_values(paths, expected)
    after = folder_info(paths.entries_folder)
    assert (after.entries, after.segments, after.dead_frames) == (len(expected), 1, 0)
    assert after.arrays == 3  # each large array keeps its file
    assert not (paths.entries_folder / "index").exists()
    again = compact(paths.entries_folder)  # nothing left to merge: the segment stays as it is
    assert (again.merged, again.segment) == ([], "")


def test_compaction_keeps_each_entry_s_stamp(tmp_path: Path) -> None:
    paths, _ = _three_writers(tmp_path)
    stamps = {entry.uid: entry.stamp for entry in packed_entries(paths.entries_folder)}
    compact(paths.entries_folder)
    assert {e.uid: e.stamp for e in packed_entries(paths.entries_folder)} == stamps


def _write_and_wait(paths: StepPaths, values: dict[str, Any], ready: Any, done: Any) -> None:
    _write(paths, values)
    ready.set()
    done.wait(30)


def test_compaction_never_touches_a_live_writer_s_segment(tmp_path: Path) -> None:
    paths, expected = _three_writers(tmp_path)
    ready, done = _FORK.Event(), _FORK.Event()
    live = _FORK.Process(target=_write_and_wait, args=(paths, {"item0": "live"}, ready, done))
    live.start()
    try:
        assert ready.wait(30)
        _write(paths, {"mine": "this process"})  # this process's open segment: live too
        finished = _segments_of(paths)
        live_segments = [n for n in finished if f"-{live.pid}-" in n or f"-{os.getpid()}-" in n]
        assert len(live_segments) == 2
        snapshot = {n: (paths.segments_folder / n).read_bytes() for n in live_segments}
        report = compact(paths.entries_folder)
        assert report.live == 2
        assert len(report.merged) == 3
        assert {n: (paths.segments_folder / n).read_bytes() for n in live_segments} == snapshot
        expected.update(item0="live", mine="this process")
        _assert_values(paths, expected)
    finally:
        done.set()
        live.join()


def _compact_killed_before_deleting(paths: StepPaths, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    def killed(folder: str, names: list[str]) -> None:
        raise KeyboardInterrupt  # as a kill between the rename and the deletes

    monkeypatch.setattr(_maintenance, "_remove_segments", killed)
    before = _segments_of(paths)
    with pytest.raises(KeyboardInterrupt):
        compact(paths.entries_folder)
    monkeypatch.undo()
    return before


def test_a_killed_compaction_loses_nothing_and_serves_each_value_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, expected = _three_writers(tmp_path)
    _in_child(_clear, paths, "item1")  # a cleared item must stay cleared through all this
    del expected["item1"]
    before = _compact_killed_before_deleting(paths, monkeypatch)
    after = _segments_of(paths)
    assert set(before) < set(after)  # the old ones, and the new one
    assert len(after) == len(before) + 1
    _assert_values(paths, expected)
    assert _read_all(paths, ["item1"]) == {"item1": None}
    entries = packed_entries(paths.entries_folder)
    assert sorted(e.uid for e in entries) == sorted(expected)  # one entry per item
    report = compact(paths.entries_folder)  # the next compaction merges the duplicates
    assert len(_segments_of(paths)) == 1
    assert report.entries == len(expected)
    _assert_values(paths, expected)
    assert _read_all(paths, ["item1"]) == {"item1": None}


def test_a_killed_compaction_midway_through_deleting_brings_no_value_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _paths(tmp_path)
    _in_child(_write, paths, {"a": "old", "b": "kept"})
    _in_child(_clear, paths, "a")
    real = _maintenance._remove_segments

    def killed_after_the_newest(folder: str, names: list[str]) -> None:
        real(folder, names[-1:])  # the segment of the clearing goes first, then a kill
        raise KeyboardInterrupt

    monkeypatch.setattr(_maintenance, "_remove_segments", killed_after_the_newest)
    with pytest.raises(KeyboardInterrupt):
        compact(paths.entries_folder)
    assert _read_all(paths, ["a", "b"]) == {"a": None, "b": ("success", "kept")}


def test_superseded_and_cleared_frames_go_and_cleared_items_stay_cleared(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    _in_child(_write, paths, {"a": 1, "b": 2, "c": 3})
    _in_child(_write, paths, {"a": 10})
    _in_child(_clear, paths, "b")
    report = compact(paths.entries_folder)
    # b's clearing stays once: until the merged segments are all gone, it shadows b's result
    assert (report.entries, report.cleared) == (2, 1)
    assert folder_info(paths.entries_folder).dead_frames == 1
    values = {"a": ("success", 10), "b": None, "c": ("success", 3)}
    assert _read_all(paths, ["a", "b", "c"]) == values
    _in_child(_write, paths, {"d": 4})
    report = compact(paths.entries_folder)
    assert (report.entries, report.cleared) == (3, 0)  # nothing left for the clearing to shadow
    assert folder_info(paths.entries_folder).dead_frames == 0
    assert _read_all(paths, ["a", "b", "c", "d"]) == {**values, "d": ("success", 4)}


def test_a_cleared_item_with_a_frame_in_a_live_segment_keeps_its_clearing(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    _write(paths, {"a": "written by this process"})  # stays in this process's live segment
    _in_child(_clear, paths, "a")
    _in_child(_write, paths, {"b": 2})
    report = compact(paths.entries_folder)
    assert report.cleared == 1
    assert _read_all(paths, ["a", "b"]) == {"a": None, "b": ("success", 2)}


def test_a_clearing_that_shadows_an_old_file_is_kept(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    _in_child(_write, paths, {"a": "new"})
    _in_child(_clear, paths, "a")
    paths.cache_folder.mkdir()
    _old_pickle(paths.cache_folder, "a", pickle.dumps("old"))  # left by a killed clear
    for extra in ("b", "c"):  # two compactions: the clearing is the only frame at the second
        _in_child(_write, paths, {extra: 1})
        assert compact(paths.entries_folder).cleared == 1
        assert _read_all(paths, ["a"]) == {"a": None}


def test_drop_removes_the_chosen_entries_and_their_array_files(tmp_path: Path) -> None:
    paths, expected = _three_writers(tmp_path)
    stamps = {e.uid: e.stamp for e in packed_entries(paths.entries_folder)}
    seen: list[tuple[str, int, int]] = []

    def drop(uid: str, kind: int, stamp: int) -> bool:
        seen.append((uid, kind, stamp))
        return uid in ("big0", "item2")

    report = compact(paths.entries_folder, drop=drop, grace=0)
    assert sorted(report.dropped) == ["big0", "item2"]
    assert ("big0", ARRAY_FILE, stamps["big0"]) in seen
    assert ("item2", RESULT, stamps["item2"]) in seen
    assert report.arrays_removed == 1
    assert not list(paths.arrays_folder.glob("big0.*"))
    assert _read_all(paths, ["big0", "item2"]) == {"big0": None, "item2": None}
    del expected["big0"], expected["item2"]
    _assert_values(paths, expected)


def test_an_orphan_array_file_goes_only_after_the_grace_period(tmp_path: Path) -> None:
    paths, _ = _three_writers(tmp_path)
    orphan = paths.arrays_folder / "lost.0.npy"  # as a writer killed before its frame
    orphan.write_bytes(b"x" * 100)
    assert compact(paths.entries_folder).arrays_removed == 0  # too young: perhaps being written
    old = time.time() - 2 * _maintenance.ARRAY_GRACE_SECONDS
    os.utime(orphan, (old, old))
    assert compact(paths.entries_folder).arrays_removed == 1
    assert not orphan.exists()
    assert len(list(paths.arrays_folder.iterdir())) == 3  # the arrays that entries refer to


def test_a_segment_of_another_host_is_merged_once_its_writer_is_silent(tmp_path: Path) -> None:
    paths, expected = _three_writers(tmp_path)
    first = sorted(paths.segments_folder.glob("*.seg"))[0]
    stamp = first.name.split("-", 1)[0]
    other = first.with_name(f"{stamp}-elsewhere-42-0badc0de.seg")  # written on another host
    first.rename(other)
    assert compact(paths.entries_folder).live == 1  # changed lately: perhaps still writing
    old = time.time() - 2 * _maintenance.STALE_SECONDS
    os.utime(other, (old, old))
    beat = paths.entries_folder / "claims" / "elsewhere-42-feedbeef.beat"
    beat.parent.mkdir(exist_ok=True)
    beat.touch()  # its process still beats: alive, only quiet
    assert compact(paths.entries_folder).live == 1
    os.utime(beat, (old, old))
    report = compact(paths.entries_folder)
    assert report.live == 0
    assert other.name in report.merged
    assert not beat.exists()  # the heartbeat of a silent process goes too
    _assert_values(paths, expected)


def test_compaction_removes_what_killed_writers_left_once_old(tmp_path: Path) -> None:
    paths, _ = _three_writers(tmp_path)
    (paths.entries_folder / "claims").mkdir(exist_ok=True)
    left = [
        paths.arrays_folder / ".big9.1.npy.abc1-0.tmp",
        paths.segments_folder / ".1-host-1-x.seg.tmp",
        paths.entries_folder / "claims" / ".host-1-x-0.claim.tmp",
        paths.entries_folder / "index.1-abc.tmp",
    ]
    for path in left:
        path.write_bytes(b"partial")
    compact(paths.entries_folder)
    assert all(path.exists() for path in left)  # fresh: perhaps being written
    day_ago = time.time() - 86_400
    for path in left:
        os.utime(path, (day_ago, day_ago))
    compact(paths.entries_folder)
    assert [path.name for path in left if path.exists()] == []


def test_a_corrupt_frame_is_not_copied(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    _in_child(_write, paths, {"a": "x" * 100, "b": "y" * 100})
    (segment,) = paths.segments_folder.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[data.index(b"x" * 100) + 50] ^= 0xFF
    segment.write_bytes(bytes(data))
    _in_child(_write, paths, {"c": 3})
    report = compact(paths.entries_folder)
    assert report.corrupt == ["a"]
    assert _read_all(paths, ["a", "b", "c"]) == {
        "a": None,
        "b": ("success", "y" * 100),
        "c": ("success", 3),
    }


# ---------------------------------------------------------------- migration


def _old_pickle(cache: Path, uid: str, payload: bytes, magic: bytes = b"ASSAYP1\n") -> Path:
    path = cache / f"{uid}.pkl"
    path.write_bytes(magic + xxhash.xxh3_128_digest(payload) + payload)
    return path


def _old_array(cache: Path, uid: str, array: np.ndarray[Any, Any]) -> Path:
    head, body = _header_and_body(array)
    trailer = struct.pack(
        "<8sQ16s16s16s",
        b"ASSAYN1\n",
        body.nbytes,
        xxhash.xxh3_128_digest(head),
        xxhash.xxh3_128_digest(body),
        xxhash.xxh3_128_digest(_sample(body)),
    )
    path = cache / f"{uid}.npy"
    path.write_bytes(head + bytes(body) + trailer)
    return path


def _old_layout(base: Path) -> tuple[StepPaths, dict[str, Any]]:
    paths = _paths(base)
    cache = paths.cache_folder
    cache.mkdir(parents=True)
    (paths.entries_folder / "locks").mkdir()
    (paths.entries_folder / "locks" / "gone.lock").write_text("host 1")
    os.utime(paths.entries_folder / "locks" / "gone.lock", (1e9, 1e9))  # long stale
    expected: dict[str, Any] = {"r0": {"n": 0}, "r1": [1, 2, 3], "small": np.arange(5.0)}
    expected["big"] = np.arange(float(BIG))
    for uid in ("r0", "r1"):
        _old_pickle(cache, uid, pickle.dumps(expected[uid]))
    _old_array(cache, "small", expected["small"])
    _old_array(cache, "big", expected["big"])
    error = CachedError("ValueError", "bad input", "Traceback ...", None)
    _old_pickle(cache, "failed", pickle.dumps(error), b"ASSAYE1\n")
    return paths, expected


def test_migrate_packs_every_old_entry_and_removes_the_old_files(tmp_path: Path) -> None:
    paths, expected = _old_layout(tmp_path)
    old = time.time() - 40 * 86400
    os.utime(paths.cache_folder / "r0.pkl", (old, old))
    assert folder_info(paths.entries_folder).legacy == 5
    _assert_values(paths, expected)  # served from the old files before
    report = migrate(paths.entries_folder)
    assert sorted(report.migrated) == ["big", "failed", "r0", "r1", "small"]
    assert report.corrupt == []
    assert not paths.cache_folder.exists()
    assert not (paths.entries_folder / "locks").exists()
    _assert_values(paths, expected)
    assert _read_all(paths, ["failed"])["failed"] == (
        "error",
        CachedError("ValueError", "bad input", "Traceback ...", None),
    )
    entries = {e.uid: e for e in packed_entries(paths.entries_folder)}
    assert entries["big"].kind == ARRAY_FILE
    assert entries["r0"].stamp // 10**9 == int(old)  # its age is its old file's
    info = folder_info(paths.entries_folder)
    assert (info.entries, info.errors, info.legacy, info.arrays) == (5, 1, 0, 1)


def test_a_corrupt_old_entry_is_reported_and_left_in_place(tmp_path: Path) -> None:
    paths, expected = _old_layout(tmp_path)
    bad = _old_pickle(paths.cache_folder, "bad", pickle.dumps("value"))
    bad.write_bytes(bad.read_bytes()[:-3] + b"!!!")
    torn = _old_array(paths.cache_folder, "torn", np.arange(100.0))
    torn.write_bytes(torn.read_bytes()[:200])
    report = migrate(paths.entries_folder)
    assert sorted(uid for uid, _ in report.corrupt) == ["bad", "torn"]
    assert "checksum mismatch" in dict(report.corrupt)["bad"]
    assert sorted(p.name for p in paths.cache_folder.iterdir()) == ["bad.pkl", "torn.npy"]
    assert "bad" not in {e.uid for e in packed_entries(paths.entries_folder)}
    _assert_values(paths, expected)


def test_an_old_entry_that_a_frame_replaces_is_removed_not_packed(tmp_path: Path) -> None:
    paths, _ = _old_layout(tmp_path)
    _in_child(_write, paths, {"r0": "recomputed", "r1": "recomputed too"})
    _in_child(_clear, paths, "r1")
    # killed between the clearing frame and the removal of the old file, which must not return
    _old_pickle(paths.cache_folder, "r1", pickle.dumps("stale"))
    report = migrate(paths.entries_folder)
    assert sorted(report.shadowed) == ["r0", "r1"]
    assert "r0" not in report.migrated
    assert not list(paths.cache_folder.glob("r[01].*"))
    assert _read_all(paths, ["r0", "r1"]) == {"r0": ("success", "recomputed"), "r1": None}


def test_migrate_leaves_a_folder_an_older_assay_is_computing_in_alone(tmp_path: Path) -> None:
    paths, _ = _old_layout(tmp_path)
    (paths.entries_folder / "locks" / "r9.lock").write_text("host 1")  # fresh
    before = sorted(p.name for p in paths.cache_folder.iterdir())
    report = migrate(paths.entries_folder)
    assert report.busy
    assert report.migrated == []
    assert sorted(p.name for p in paths.cache_folder.iterdir()) == before


# ---------------------------------------------------------------- folders and commands


class Square(Step):
    def _run(self, value: float) -> float:
        return value * value


def _step_cache(base: Path) -> Path:
    """A real step cache folder (marked by assay-steps), its writer finished."""
    Square(infra=Cached(folder=base)).run_many([1.0, 2.0, 3.0])
    finish_writers()
    return base


def test_entries_folders_lists_code_versions_and_steps_without_them(tmp_path: Path) -> None:
    (tmp_path / ("A-" + "0" * 32) / "code-v1").mkdir(parents=True)
    (tmp_path / ("A-" + "0" * 32) / "code-v2").mkdir()
    (tmp_path / ("B-" + "1" * 32) / "segments").mkdir(parents=True)
    (tmp_path / ("C-" + "2" * 32) / "code-v1").mkdir(parents=True)
    (tmp_path / ("C-" + "2" * 32) / "cache").mkdir()  # entries of its own, older layout
    (tmp_path / "not-a-step").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in entries_folders(tmp_path)]
    assert found == [
        "A-" + "0" * 32 + "/code-v1",
        "A-" + "0" * 32 + "/code-v2",
        "B-" + "1" * 32,
        "C-" + "2" * 32,
        "C-" + "2" * 32 + "/code-v1",
    ]


def test_folder_info_counts_errors_claims_and_dead_frames(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    store = EntryStore(paths)
    store.write_result("a", 1)
    store.write_result("a", 2)
    store.write_error("e", CachedError("KeyError", "k", "tb", None))
    store.write_result("gone", 3)
    store.clear("gone")
    store.sync()
    claim = Claim.take(str(paths.entries_folder), ["x", "y"])
    try:
        info = folder_info(paths.entries_folder)
    finally:
        claim.release()
    assert (info.entries, info.errors, info.claims, info.live_segments) == (2, 1, 1, 1)
    assert info.dead_frames == 3  # a's first frame, gone's result and its clearing
    assert info.reclaimable_bytes == 0  # all in this process's live segment
    assert count_entries(paths.entries_folder) == 2


def test_info_shows_a_table_and_says_how_to_migrate_old_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _step_cache(tmp_path / "steps")
    (version,) = entries_folders(cache)
    (version / "cache").mkdir()
    _old_pickle(version / "cache", "old", pickle.dumps(4.0))
    assert main(["cache", "info", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"cache of {cache}" in out
    row = next(line for line in out.splitlines() if version.name in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[1:4] == ["3", "0", "1"]  # entries, errors, segments
    assert cells[-2:] == ["1", "0"]  # older layout, claims
    assert "1 entry in the older layout" in out
    assert f"assay cache migrate {cache}" in out
    assert main(["cache", "migrate", str(cache)]) == 0
    assert "packed 1 entry of the older layout" in capsys.readouterr().out
    assert main(["cache", "info", str(cache)]) == 0
    assert "assay cache migrate" not in capsys.readouterr().out


def test_compact_and_migrate_commands_on_a_step_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _step_cache(tmp_path / "steps")
    Square(infra=Cached(folder=cache, mode="force")).run_many([1.0, 2.0])  # supersedes two
    finish_writers()
    assert main(["cache", "compact", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "compacted 2 segments into 1, freeing " in out
    assert main(["cache", "compact", str(cache)]) == 0
    assert f"nothing to compact in {cache}" in capsys.readouterr().out
    assert main(["cache", "migrate", str(cache)]) == 0
    assert f"no entries of the older layout in {cache}" in capsys.readouterr().out
    (version,) = entries_folders(cache)
    forget_catalog(os.path.abspath(version))
    reader = Square(infra=Cached(folder=cache, mode="read-only"))
    assert list(reader.run_many([1.0, 2.0, 3.0])) == [1.0, 4.0, 9.0]


def test_migrate_command_names_a_corrupt_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _step_cache(tmp_path / "steps")
    (version,) = entries_folders(cache)
    (version / "cache").mkdir()
    bad = _old_pickle(version / "cache", "bad", b"payload")
    bad.write_bytes(bad.read_bytes()[:-1] + b"?")
    assert main(["cache", "migrate", str(cache)]) == 0
    captured = capsys.readouterr()
    assert "left in place, not migrated" in captured.err
    assert str(bad) in captured.err
    assert bad.exists()


@pytest.mark.parametrize("action", ["info", "compact", "migrate"])
def test_a_folder_without_assay_s_marker_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    (tmp_path / ("Square-" + "0" * 32) / "segments").mkdir(parents=True)
    assert main(["cache", action, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("assay: error: ForeignFolderError: ")
    assert "nor the .assay-cache marker" in err
