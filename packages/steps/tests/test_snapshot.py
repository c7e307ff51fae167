"""The saved catalog (``index``): an accelerator, ignored and rebuilt when it does not fit."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from assay_steps import _catalog, _snapshot
from assay_steps._catalog import Catalog
from steps_testkit import Mult, calls, infra
from store_testkit import as_a_new_process, cut, flip, frames_in, python, segments

READS_OF_A_NEW_PROCESS = """
import json, os, sys; sys.path.insert(0, sys.argv[1])
from steps_testkit import Mult
folder, segment, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
inode = os.stat(segment).st_ino
reads, real = [], os.pread

def spy(fd, n, offset):
    if os.fstat(fd).st_ino == inode:
        reads.append([offset, n])
    return real(fd, n, offset)

step = Mult(infra={"backend": "Cached", "folder": folder, "mode": "read-only"})
store = step._store(())
os.pread = spy
store.refresh()  # what a new process does first: take in the folder
os.pread = real
assert list(step.run_many(range(count))) == [2.0 * v for v in range(count)]
print(json.dumps(reads))
"""


def entries_of(folder: Path) -> Path:
    return Mult(infra=infra(folder)).lookup(0.0).paths.entries_folder


def save_index(entries: Path) -> None:
    """Scan the folder as a new process would; a scan of that many frames saves the index."""
    Catalog(str(entries)).refresh()


def load(entries: Path) -> tuple[list[str], list[int], dict[str, int]] | None:
    return _snapshot.load_snapshot(str(entries / "index"), str(entries / "segments"))


@pytest.mark.slow
def test_a_new_process_reads_a_large_folder_through_its_index(folder: Path) -> None:
    list(Mult(infra=infra(folder)).run_many(range(5000)))
    entries = entries_of(folder)
    save_index(entries)
    loaded = load(entries)
    assert loaded is not None, "a scan of 5,000 frames saves the index"
    (segment,) = segments(entries)
    covered = dict(zip(loaded[0], loaded[1], strict=True))[segment.name]
    assert covered == segment.stat().st_size
    list(Mult(infra=infra(folder)).run_many(range(5000, 5010)))  # frames the index lacks
    assert segment.stat().st_size > covered

    reads = json.loads(python(READS_OF_A_NEW_PROCESS, folder, segment, 5010).stdout)
    assert reads, "the new entries were read from the segment"
    assert all(offset >= covered for offset, _ in reads)  # only what the index does not cover
    assert sum(n for _, n in reads) <= segment.stat().st_size - covered

    (entries / "index").unlink()  # without it, the whole segment is scanned (the spy works)
    reads = json.loads(python(READS_OF_A_NEW_PROCESS, folder, segment, 5010).stdout)
    assert min(offset for offset, _ in reads) == 0
    assert calls("Mult") == list(range(5010))


# ---------------------------------------------------------------- an index that does not fit


def _deleted(entries: Path) -> None:
    (entries / "index").unlink()


def _truncated(entries: Path) -> None:
    index = entries / "index"
    cut(index, index.stat().st_size // 2)


def _bit_flipped(entries: Path) -> None:
    flip(entries / "index", 40, 0x04)


def _checksum_flipped(entries: Path) -> None:
    flip(entries / "index", -1, 0x01)


def _garbage(entries: Path) -> None:
    (entries / "index").write_bytes(b"ASX1" + os.urandom(500))


def _empty(entries: Path) -> None:
    (entries / "index").write_bytes(b"")


DAMAGE = [_deleted, _truncated, _bit_flipped, _checksum_flipped, _garbage, _empty]


@pytest.fixture
def small_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_catalog, "SNAPSHOT_FRAMES", 10)


@pytest.mark.usefixtures("small_index")
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_index_is_ignored_and_rebuilt(
    folder: Path, damage: Callable[[Path], None]
) -> None:
    values = [float(v) for v in range(50)]
    list(Mult(infra=infra(folder)).run_many(values))
    entries = entries_of(folder)
    save_index(entries)
    assert load(entries) is not None
    damage(entries)
    assert load(entries) is None
    as_a_new_process()
    assert list(Mult(infra=infra(folder, "read-only")).run_many(values)) == [2 * v for v in values]
    assert calls("Mult") == values  # nothing recomputed
    rebuilt = load(entries)  # the new process scanned every frame: it saved a new index
    assert rebuilt is not None
    assert rebuilt[1] == [s.stat().st_size for s in segments(entries)]


@pytest.mark.usefixtures("small_index")
def test_an_index_of_a_segment_that_shrank_is_ignored(folder: Path) -> None:
    values = [float(v) for v in range(50)]
    list(Mult(infra=infra(folder)).run_many(values))
    entries = entries_of(folder)
    save_index(entries)
    (segment,) = segments(entries)
    frames = frames_in(segment)
    kept = frames[29]
    cut(segment, kept.offset + kept.length + 5)  # 30 whole frames, then part of one
    assert load(entries) is None
    as_a_new_process()
    assert list(Mult(infra=infra(folder)).run_many(values)) == [2 * v for v in values]
    assert calls("Mult") == values + values[30:]  # the cut entries only, computed again


@pytest.mark.usefixtures("small_index")
def test_an_index_of_a_segment_that_is_gone_is_ignored(folder: Path) -> None:
    values = [float(v) for v in range(50)]
    list(Mult(infra=infra(folder)).run_many(values))
    entries = entries_of(folder)
    save_index(entries)
    (segment,) = segments(entries)
    segment.rename(segment.with_name("0" + segment.name))  # another name: not the file indexed
    assert load(entries) is None
    as_a_new_process()
    assert list(Mult(infra=infra(folder, "read-only")).run_many(values)) == [2 * v for v in values]


@pytest.mark.usefixtures("small_index")
def test_an_index_pointing_items_at_each_others_frames_never_serves_them(folder: Path) -> None:
    values = [float(v) for v in range(50)]
    step = Mult(infra=infra(folder))
    list(step.run_many(values))
    entries = entries_of(folder)
    save_index(entries)
    loaded = load(entries)
    assert loaded is not None
    names, covered, found = loaded
    a, b = step.lookup(1.0).uid, step.lookup(2.0).uid
    found[a], found[b] = found[b], found[a]  # a whole, valid index that is wrong
    _snapshot.save_snapshot(str(entries / "index"), names, covered, found)
    as_a_new_process()
    assert list(Mult(infra=infra(folder)).run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert calls("Mult") == [*values, 1.0, 2.0]  # computed again, never swapped


@pytest.mark.usefixtures("small_index")
def test_an_index_older_than_a_clear_does_not_bring_the_entry_back(folder: Path) -> None:
    values = [float(v) for v in range(50)]
    step = Mult(infra=infra(folder))
    list(step.run_many(values))
    entries = entries_of(folder)
    save_index(entries)
    step.lookup(7.0).clear_cache()
    as_a_new_process()
    assert Mult(infra=infra(folder)).lookup(7.0).status is None
    assert Mult(infra=infra(folder)).lookup(8.0).status == "success"


def test_an_index_is_written_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "index"
    _snapshot.save_snapshot(str(path), ["a.seg"], [10], {"x": 1})
    before = path.read_bytes()

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    _snapshot.save_snapshot(str(path), ["a.seg"], [20], {"x": 2, "y": 3})  # best effort: silent
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporary file left


@pytest.mark.usefixtures("small_index")
def test_an_index_naming_a_segment_outside_its_folder_is_not_followed(tmp_path: Path) -> None:
    # Item uids depend on the input only: another step's segment holds valid frames of the
    # same items. An index (hostile, or copied from elsewhere) must not bring them in.
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    values = [float(v) for v in range(20)]
    list(Mult(coeff=3, infra=infra(elsewhere)).run_many(values))
    other_entries = Mult(coeff=3, infra=infra(elsewhere)).lookup(0.0).paths.entries_folder
    (other,) = segments(other_entries)
    list(Mult(infra=infra(here)).run_many([100.0 + v for v in values]))  # enough to index
    entries = entries_of(here)
    save_index(entries)
    loaded = load(entries)
    assert loaded is not None
    names, covered, found = loaded
    escape = os.path.relpath(other, entries / "segments")
    catalog = Catalog(str(other_entries))
    catalog.refresh()
    number = len(names)
    for uid, location in catalog.entries.items():
        found[uid] = (number << 44) | (location & ((1 << 44) - 1))
    _snapshot.save_snapshot(
        str(entries / "index"), [*names, escape], [*covered, other.stat().st_size], found
    )
    assert load(entries) is not None  # a whole index: the catalog itself must refuse it
    as_a_new_process()
    assert list(Mult(infra=infra(here)).run_many(values)) == [2 * v for v in values]
