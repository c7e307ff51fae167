"""Corruption: damaged frames, array files and index, deleted metadata, unreadable files, full disk.

Each is detected and reported by name; recomputed in cached mode, a clear error in read-only
mode; never a wrong value. A frame damaged so that it no longer parses as a frame (cut short,
its magic or kind changed, its uid changed) is no entry at all: the item reads as missing. A
frame that parses but fails its checksum is a corrupt entry. Damage after the last frame of a
segment, or to the ``index`` (an accelerator), changes nothing that is read.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assay_steps import _catalog, _durable, _segments
from audit import audit_steps, count, metrics_by_run
from layout import (
    CHECKSUM,
    HEADER,
    RESULT,
    Frame,
    array_file,
    claim_files,
    frame_of,
    frames,
    new_process,
)
from reliability_steps import (
    ItemFailed,
    ReliabilityPayload,
    computations,
    expected,
    fails,
    same,
    sweep_all,
)

from assay import Experiment, InfrastructureError, Results, explicit

ITEMS = list(range(12))
#: An item of each kind of entry: a small array (inline in its frame), a large array (its own
#: file), a dict and a tuple (pickled), a cached error.
KINDS = {"inline-array": 0, "array-file": 3, "dict": 1, "tuple": 2, "cached-error": 10}


def step_on(folder: Path, log: Path | None = None, mode: str = "cached") -> ReliabilityPayload:
    side = "" if log is None else str(log)
    return ReliabilityPayload(
        side_effects=side, infra={"backend": "Cached", "folder": folder, "mode": mode}
    )


def sweep(folder: Path, log: Path | None = None, mode: str = "cached") -> ReliabilityPayload:
    step = step_on(folder, log, mode)
    sweep_all(step, ITEMS)
    return step


def sweep_with_last(folder: Path, item: int) -> None:
    """Sweep every item, ``item`` last: its frame is the last entry of the segment."""
    new_process()
    sweep_all(step_on(folder), [i for i in ITEMS if i != item])
    sweep_all(step_on(folder), [item])


def where(folder: Path, item: int) -> tuple[Path, str]:
    """The entries folder and the uid of ``item``."""
    handle = step_on(folder).lookup(item)
    return handle.paths.entries_folder, handle.uid


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x40]) + data[position + 1 :]


def _checksum_at(frame: Frame) -> int:
    return frame.end - 1 if CHECKSUM else frame.start + HEADER.size - 1


#: Damage to the bytes of a segment, around the item's frame; and what a reader then finds:
#: "missing" (no frame of the item parses), "corrupt" (it parses and fails verification),
#: "either" of the two, or "harmless" (the item reads back, nothing is recomputed).
FRAME_DAMAGE: dict[str, tuple[Callable[[bytes, Frame], bytes], str]] = {
    "cut-in-header": (lambda data, f: data[: f.start + 10], "missing"),
    "cut-in-uid": (lambda data, f: data[: f.uid_start + 3], "missing"),
    "cut-in-value": (lambda data, f: data[: f.value_start + len(f.value) // 2], "missing"),
    "last-byte-missing": (lambda data, f: data[: f.end - 1], "missing"),
    "magic-flipped": (lambda data, f: _flip(data, f.start), "missing"),
    "kind-flipped": (lambda data, f: _flip(data, f.start + 4), "missing"),
    "stamp-flipped": (lambda data, f: _flip(data, f.start + 9), "corrupt"),
    "length-flipped": (lambda data, f: _flip(data, f.start + 16), "either"),
    "uid-flipped": (lambda data, f: _flip(data, f.uid_start + 1), "missing"),
    "value-first-byte-flipped": (lambda data, f: _flip(data, f.value_start), "corrupt"),
    "value-middle-byte-flipped": (
        lambda data, f: _flip(data, f.value_start + len(f.value) // 2),
        "corrupt",
    ),
    "value-last-byte-flipped": (lambda data, f: _flip(data, f.end - CHECKSUM - 1), "corrupt"),
    "checksum-flipped": (lambda data, f: _flip(data, _checksum_at(f)), "corrupt"),
    "byte-inserted-in-value": (
        lambda data, f: data[: f.value_start + 1] + b"\0" + data[f.value_start + 1 :],
        "corrupt",
    ),
    "block-zeroed": (
        lambda data, f: (
            data[: f.value_start]
            + bytes(min(4096, len(f.value)))
            + data[f.value_start + min(4096, len(f.value)) :]
        ),
        "corrupt",
    ),
    "garbage-appended": (lambda data, f: data + b"\0garbage\0" * 9, "harmless"),
}


#: Damage to a whole file (an array file of the item): every kind is detected.
FILE_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated-to-empty": lambda data: b"",
    "truncated-to-half": lambda data: data[: len(data) // 2],
    "last-byte-missing": lambda data: data[:-1],
    "first-byte-flipped": lambda data: _flip(data, 0),
    "header-byte-flipped": lambda data: _flip(data, 12),
    "middle-byte-flipped": lambda data: _flip(data, len(data) // 2),
    "last-byte-flipped": lambda data: _flip(data, len(data) - 1),
    "byte-appended": lambda data: data + b"\0",
}

#: File damage that leaves the value intact: the sampled-data checksum of an array file's
#: trailer is only used for arrays over 16 MiB, so a flip in it changes nothing that is read.
HARMLESS = {"last-byte-flipped"}


def check_not_served(folder: Path, item: int, outcome: str) -> None:
    """In read-only mode the damaged entry of ``item`` is reported by its uid, never returned.

    Checked twice: by this process, whose catalog was built before the damage (it wrote the
    entries), then by a new process.
    """
    for fresh in (False, True):
        if fresh:
            new_process()
        reader = step_on(folder, mode="read-only")
        handle = reader.lookup(item)
        if outcome == "harmless":
            assert handle.status == ("error" if fails(item) else "success")
            if not fails(item):
                assert same(reader.run(item), expected(item))
            continue
        assert handle.status is None
        said = {"corrupt": "corrupt", "missing": "no cached result"}.get(outcome, "")
        if fresh and said:
            with pytest.raises(RuntimeError, match=f"{handle.uid}.*{said}|{said}.*{handle.uid}"):
                handle.result()
        with pytest.raises(RuntimeError, match=f"{handle.uid}.*read-only"):
            reader.run(item)


def check_recomputed(folder: Path, log: Path, item: int, outcome: str) -> None:
    """In cached mode the item is recomputed once and replaced; every other item untouched."""
    new_process()
    step = step_on(folder, log)
    if fails(item):
        with pytest.raises(ItemFailed):
            step.run(item)
    else:
        assert same(step.run(item), expected(item))
    assert computations(log) == ({} if outcome == "harmless" else {item: 1})
    found = audit_steps(folder, ITEMS)
    count("wrong values returned", len(found.wrong))
    assert (found.complete, found.wrong) == (len(ITEMS), [])
    sweep(folder, log)
    assert computations(log) == ({} if outcome == "harmless" else {item: 1})


@pytest.mark.parametrize("damage", list(FRAME_DAMAGE))
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_damaged_frame_is_never_served_and_is_recomputed(
    tmp_path: Path, kind: str, damage: str
) -> None:
    item = KINDS[kind]
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep_with_last(folder, item)
    entries, uid = where(folder, item)
    frame = frame_of(entries, uid)
    assert frame.segment.read_bytes()[frame.end :][4:5] == b"\x06"  # only the seal follows
    harm, outcome = FRAME_DAMAGE[damage]
    frame.segment.write_bytes(harm(frame.segment.read_bytes(), frame))
    count("corruption cases")
    check_not_served(folder, item, outcome)
    check_recomputed(folder, log, item, outcome)


@pytest.mark.parametrize("damage", list(FILE_DAMAGE))
def test_a_damaged_array_file_is_never_served_and_is_recomputed(
    tmp_path: Path, damage: str
) -> None:
    item = KINDS["array-file"]
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep(folder)
    path = array_file(*where(folder, item))
    path.write_bytes(FILE_DAMAGE[damage](path.read_bytes()))
    count("corruption cases")
    outcome = "harmless" if damage in HARMLESS else "corrupt"
    check_not_served(folder, item, outcome)
    check_recomputed(folder, log, item, outcome)


@pytest.mark.parametrize("mode", ["read-only", "cached"])
def test_a_missing_array_file_is_a_corrupt_entry(tmp_path: Path, mode: str) -> None:
    """The file a frame names is gone (deleted, or lost to a power cut before it was flushed).

    Reported as a corrupt entry naming the item in read-only mode; recomputed in cached mode.
    """
    item = KINDS["array-file"]
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep(folder)
    array_file(*where(folder, item)).unlink()
    count("corruption cases")
    if mode == "read-only":
        check_not_served(folder, item, "corrupt")
    else:
        check_recomputed(folder, log, item, "corrupt")


def _index(folder: Path, monkeypatch: pytest.MonkeyPatch, item: int = 0) -> Path:
    """Have a new process save the catalog as ``index`` (as it does after a long scan)."""
    new_process()
    monkeypatch.setattr(_catalog, "SNAPSHOT_FRAMES", 1)
    entries, _ = where(folder, item)
    assert step_on(folder, mode="read-only").lookup(item).status == "success"
    monkeypatch.undo()
    index = entries / "index"
    assert index.is_file(), "no index was saved"
    return index


INDEX_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    **{name: harm for name, harm in FILE_DAMAGE.items()},
    "garbage": lambda data: b"garbage" * 200,
    "another-folder's": lambda data: data,  # replaced below by another folder's index
}


@pytest.mark.parametrize("damage", list(INDEX_DAMAGE))
def test_a_damaged_index_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """The index only spares a scan: damaged, it is ignored; every entry reads as before."""
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep(folder)
    index = _index(folder, monkeypatch)
    if damage == "another-folder's":  # same step, other items: a valid index of other files
        other = tmp_path / "other"
        sweep_all(step_on(other), [i + 100 for i in ITEMS])
        shutil.copyfile(_index(other, monkeypatch, 100), index)
    else:
        index.write_bytes(INDEX_DAMAGE[damage](index.read_bytes()))
    count("corruption cases")
    found = audit_steps(folder, ITEMS)
    assert (found.complete, found.wrong) == (len(ITEMS), [])
    new_process()
    sweep(folder, log)
    assert computations(log) == {}  # nothing recomputed


def test_an_index_older_than_the_segments_misses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries written after the index was saved (to the same and to new segments) are read."""
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep_all(step_on(folder), ITEMS[:6])
    _index(folder, monkeypatch)
    sweep_all(step_on(folder), ITEMS[6:9])  # the same segment (this process's writer) grows
    new_process()
    sweep_all(step_on(folder), ITEMS[9:])  # a new segment
    found = audit_steps(folder, ITEMS)
    assert (found.complete, found.wrong) == (len(ITEMS), [])
    sweep(folder, log)
    assert computations(log) == {}


def test_deleted_config_claims_and_index_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep(folder)
    index = _index(folder, monkeypatch)
    (step_folder,) = (config.parent for config in folder.glob("*/config.json"))
    (step_folder / "config.json").unlink()
    (claims,) = step_folder.glob("code-*/claims")
    shutil.rmtree(claims)
    index.unlink()
    count("corruption cases")
    found = audit_steps(folder, ITEMS)
    assert (found.complete, found.wrong) == (len(ITEMS), [])
    new_process()
    sweep(folder, log)
    assert computations(log) == {}  # nothing recomputed


# ---------------------------------------------------------------- misattributed entries


def _same_length_pair(entries: Path, folder: Path) -> tuple[int, int]:
    """Two tuple items whose frames have the same length (one can be copied over the other)."""
    lengths: dict[int, list[int]] = {}
    for i in ITEMS:
        if i % 3 == 2:
            frame = frame_of(entries, where(folder, i)[1])
            lengths.setdefault(frame.end - frame.start, []).append(i)
    pair = next(items for items in lengths.values() if len(items) >= 2)
    return pair[0], pair[1]


@pytest.mark.parametrize("catalog", ["scanned", "from-index", "in-memory"])
def test_a_frame_copied_over_another_items_frame_is_never_served_as_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog: str
) -> None:
    """Item A's whole frame copied over item B's: B is recomputed, or raises naming B.

    The reader finds B's location by scanning the segments (the copy then reads as A's),
    from a saved index, or in the memory of the process that wrote B: the last two go
    straight to B's old offset, where A's frame now lies.
    """
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep(folder)
    entries, _ = where(folder, 0)
    a, b = _same_length_pair(entries, folder)
    frame_a, frame_b = (
        frame_of(entries, where(folder, a)[1]),
        frame_of(entries, where(folder, b)[1]),
    )
    if catalog == "from-index":
        _index(folder, monkeypatch)
    elif catalog == "in-memory":
        step_on(folder, mode="read-only").lookup(b).status  # noqa: B018 - B's location, in memory
    data = frame_b.segment.read_bytes()
    whole_a = frame_a.segment.read_bytes()[frame_a.start : frame_a.end]
    frame_b.segment.write_bytes(data[: frame_b.start] + whole_a + data[frame_b.end :])
    count("misattribution cases")
    if catalog != "in-memory":
        new_process()
    reader = step_on(folder, mode="read-only")
    assert same(reader.run(a), expected(a))
    assert reader.lookup(b).status is None
    with pytest.raises(RuntimeError, match=where(folder, b)[1]):
        reader.run(b)
    if catalog == "from-index":
        new_process()
    assert same(step_on(folder, log).run(b), expected(b))
    assert computations(log) == {b: 1}
    found = audit_steps(folder, ITEMS)
    count("wrong values returned", len(found.wrong))
    assert (found.complete, found.wrong) == (len(ITEMS), [])


def test_an_array_file_copied_over_another_items_is_never_served_as_it(tmp_path: Path) -> None:
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep(folder)
    a, b = 3, 6  # both large arrays, in files of their own
    file_a, file_b = array_file(*where(folder, a)), array_file(*where(folder, b))
    shutil.copyfile(file_a, file_b)
    count("misattribution cases")
    new_process()
    reader = step_on(folder, mode="read-only")
    assert same(reader.run(a), expected(a))
    assert reader.lookup(b).status is None
    uid_b = where(folder, b)[1]
    with pytest.raises(RuntimeError, match=f"{uid_b}.*(another item|corrupt)"):
        reader.run(b)
    assert same(step_on(folder, log).run(b), expected(b))
    assert computations(log) == {b: 1}
    found = audit_steps(folder, ITEMS)
    assert (found.complete, found.wrong) == (len(ITEMS), [])


# ---------------------------------------------------------------- unreadable files


def test_permission_000_array_file_as_a_real_user(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip(
            "running as root: permission 000 does not block reads, so the file stays "
            "readable; test_unreadable_* simulate the failing open instead"
        )
    folder = tmp_path / "cache"
    sweep(folder)
    path = array_file(*where(folder, 3))
    path.chmod(0)
    try:
        new_process()
        with pytest.raises((RuntimeError, OSError), match=path.name):
            step_on(folder, mode="read-only").run(3)
        assert same(step_on(folder).run(3), expected(3))
    finally:
        path.chmod(0o644)


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Files whose inode is in the returned set fail to open with EACCES (permission 000).

    Like a real permission, it belongs to the file, not to its name: a file renamed over it
    is readable.
    """
    inodes: set[int] = set()
    real_open = os.open

    def failing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if inodes and isinstance(path, (str, bytes, os.PathLike)) and "dir_fd" not in kwargs:
            try:
                inode = os.stat(path).st_ino
            except OSError:
                inode = -1
            if inode in inodes:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing_open)
    return inodes


@pytest.mark.parametrize("what", ["array-file", "segment"])
def test_an_unreadable_file_in_read_only_mode_is_a_clear_error(
    tmp_path: Path, unreadable: set[int], what: str
) -> None:
    """The error names the file that cannot be read, not just an item that seems missing."""
    folder = tmp_path / "cache"
    sweep(folder)
    entries, uid = where(folder, 3)
    path = array_file(entries, uid) if what == "array-file" else frame_of(entries, uid).segment
    unreadable.add(path.stat().st_ino)
    count("corruption cases")
    new_process()
    reader = step_on(folder, mode="read-only")
    with pytest.raises((RuntimeError, OSError), match=path.name):
        reader.run(3)


@pytest.mark.parametrize("what", ["array-file", "segment"])
def test_an_unreadable_file_in_cached_mode_is_recomputed(
    tmp_path: Path, unreadable: set[int], what: str
) -> None:
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    sweep(folder)
    entries, uid = where(folder, 3)
    path = array_file(entries, uid) if what == "array-file" else frame_of(entries, uid).segment
    unreadable.add(path.stat().st_ino)
    count("corruption cases")
    new_process()
    assert same(step_on(folder, log).run(3), expected(3))
    assert computations(log) == {3: 1}
    unreadable.clear()
    assert audit_steps(folder, ITEMS).complete == len(ITEMS)


# ---------------------------------------------------------------- full disk


class _FullDisk:
    """Stands for the ``os`` module in the write path: writes fail with ENOSPC past a budget.

    As on a real file system, the write that crosses the budget writes what fits (a short
    write), and the next one fails. Shared by the segment writer and the array files.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _room(self, data: Any) -> memoryview:
        view = memoryview(data).cast("B")
        if not self.budget and len(view):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[: self.budget]
        self.budget -= len(view)
        return view

    def write(self, fd: int, data: Any) -> int:
        return os.write(fd, self._room(data))

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        return os.pwrite(fd, self._room(data), offset)


def _fill_the_disk(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    disk = _FullDisk(budget)
    monkeypatch.setattr(_durable, "os", disk)
    monkeypatch.setattr(_segments, "os", disk)


@pytest.mark.parametrize(
    "budget",
    [0, 100_000, 1_000_000],
)
def test_full_disk_fails_clearly_and_keeps_every_written_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    folder = tmp_path / "cache"
    new_process()
    _fill_the_disk(monkeypatch, budget)
    with pytest.raises(OSError, match="No space left") as raised:
        sweep(folder)
    assert raised.value.errno == errno.ENOSPC
    count("corruption cases")
    found = audit_steps(folder, ITEMS)
    assert (found.corrupt, found.wrong) == (0, [])
    assert claim_files(folder) == []
    monkeypatch.undo()  # space freed: the rerun completes
    sweep(folder)
    found = audit_steps(folder, ITEMS)
    count("items lost", len(ITEMS) - found.complete)
    assert (found.complete, found.wrong) == (len(ITEMS), [])


def test_full_disk_keeps_the_previous_entry_when_forcing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    sweep(folder)
    before = {
        p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and "claims" not in p.parts
    }
    _fill_the_disk(monkeypatch, 0)
    with pytest.raises(OSError, match="No space left"):
        step_on(folder, mode="force").run_many(ITEMS)
    count("corruption cases")
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in before if p.exists()} == before  # nothing lost
    found = audit_steps(folder, ITEMS)
    assert (found.complete, found.wrong) == (len(ITEMS), [])


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (needs root or CAP_SYS_ADMIN; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        new_process()  # the descriptors this process keeps open in the cache
        _unmount(mount)


def _unmount(mount: Path) -> None:
    # Idle pool workers end on their own shortly after a sweep: until then they may hold the
    # file system busy. Wait for them a little, then detach it lazily (freed once they end).
    deadline = time.monotonic() + 10
    while subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "--lazy", str(mount)], check=True)
            return
        time.sleep(0.1)


def test_a_real_full_file_system(tiny_disk: Path) -> None:
    folder = tiny_disk / "cache"
    with pytest.raises(OSError, match="No space left") as raised:
        sweep(folder)
    assert raised.value.errno == errno.ENOSPC
    count("corruption cases")
    found = audit_steps(folder, ITEMS)
    assert found.complete >= 1  # some items fitted
    assert (found.corrupt, found.wrong) == (0, [])
    assert claim_files(folder) == []
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    sweep(folder)
    found = audit_steps(folder, ITEMS)
    count("items lost", len(ITEMS) - found.complete)
    assert (found.complete, found.wrong) == (len(ITEMS), [])


_SAVES = """
from assay_ops import operation


@operation
def saves(params, capture):
    capture.artifact("weights.bin", bytes([params["i"]]) * 60_000)
"""


@pytest.mark.parametrize("backend", [None, {"backend": "ProcessPool", "max_jobs": 2}])
def test_a_real_full_file_system_leaves_experiment_runs_pending(
    tiny_disk: Path, write_module: Callable[..., Any], backend: Any
) -> None:
    module = write_module(_SAVES, "reliability_full_disk")
    folder = tiny_disk / "exp"

    def experiment() -> Experiment:
        runs = explicit([{"i": i} for i in range(40)])  # 2.4 MB of artifacts: 1 MiB fits
        return Experiment("full", module.saves, runs, folder=folder, backend=backend)

    with pytest.raises(InfrastructureError, match="No space left on device") as raised:
        experiment().run()
    count("corruption cases")
    assert repr(str(folder)) in str(raised.value)
    counts = Results.load(folder).counts()
    assert "failed" not in counts
    assert counts.get("pending", 0) >= 1
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    results = experiment().run()  # a plain rerun, once space is freed
    assert results.counts() == {"success": 40}
    for record in results.records():
        (artifact,) = record.artifacts
        assert Path(artifact["path"]).read_bytes() == bytes([record.params["i"]]) * 60_000
    count("items lost", 40 - results.counts()["success"])


# ---------------------------------------------------------------- experiment folders


def _experiment(folder: Path, log: Path) -> Experiment:
    return Experiment(
        "corrupt",
        "reliability_steps:counted",
        explicit([{"i": i} for i in range(6)]),
        replicates=2,
        context={"side_effects": str(log)},
        folder=folder,
        progress=False,
    )


def test_lost_index_and_corrupt_run_entry_rebuild_to_the_clean_results(tmp_path: Path) -> None:
    folder, log = tmp_path / "exp", tmp_path / "computations.log"
    clean = metrics_by_run(_experiment(folder, log).run())
    runs = [f for entries in folder.glob("cache/*/code-*") for f in frames(entries)]
    assert len(runs) == len(clean)
    assert {f.kind for f in runs} == {RESULT}
    damaged = runs[0]  # one record: a byte in the middle of its value flipped
    data = damaged.segment.read_bytes()
    middle = damaged.value_start + len(damaged.value) // 2
    damaged.segment.write_bytes(data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :])
    for path in folder.glob("index.sqlite*"):
        path.unlink()
    count("corruption cases")
    new_process()
    before = sum(computations(log).values())
    assert metrics_by_run(_experiment(folder, log).run()) == clean
    assert sum(computations(log).values()) == before + 1  # only the corrupt run again


@pytest.mark.parametrize("damage", ["truncated-with-garbage", "overwritten"])
def test_corrupt_index_is_reported_by_name(tmp_path: Path, damage: str) -> None:
    folder, log = tmp_path / "exp", tmp_path / "computations.log"
    clean = metrics_by_run(_experiment(folder, log).run())
    index = folder / "index.sqlite"
    for path in folder.glob("index.sqlite-*"):
        path.unlink()
    data = index.read_bytes()
    if damage == "overwritten":
        index.write_bytes(b"garbage" * 200)
    else:
        index.write_bytes(data[: len(data) // 2] + b"\xff" * 100)
    count("corruption cases")
    with pytest.raises(sqlite3.DatabaseError, match=r"index\.sqlite.*corrupt.*delete it"):
        Results.load(folder)
    with pytest.raises(sqlite3.DatabaseError, match=r"index\.sqlite.*corrupt.*delete it"):
        _experiment(folder, log).run()
    # the remedy the message gives works: the index is rebuilt, nothing runs again
    for path in folder.glob("index.sqlite*"):
        path.unlink()
    before = computations(log)
    assert metrics_by_run(_experiment(folder, log).run()) == clean
    assert computations(log) == before
