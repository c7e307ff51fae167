"""Corruption: truncated files, flipped bytes, deleted metadata, unreadable entries, full disk.

Each is detected and reported by name; recomputed in cached mode, a clear error in
read-only mode; never a wrong value.
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
from assay_steps import _durable, _store
from audit import audit_steps, count, metrics_by_run
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
KINDS = {"array": 0, "dict": 1, "tuple": 2, "cached-error": 10}


def sweep(folder: Path, side: Path | None = None, mode: str = "cached") -> ReliabilityPayload:
    step = ReliabilityPayload(
        side_effects="" if side is None else str(side),
        infra={"backend": "Cached", "folder": folder, "mode": mode},
    )
    sweep_all(step, ITEMS)
    return step


def entry_of(folder: Path, item: int) -> Path:
    handle = ReliabilityPayload(infra={"backend": "Cached", "folder": folder}).lookup(item)
    (path,) = [
        handle.paths.cache_folder / f"{handle.uid}.{ext}"
        for ext in ("pkl", "npy")
        if (handle.paths.cache_folder / f"{handle.uid}.{ext}").exists()
    ]
    return path


def _flip(at: Callable[[int], int]) -> Callable[[bytes], bytes]:
    def flip(data: bytes) -> bytes:
        position = at(len(data))
        return data[:position] + bytes([data[position] ^ 0x40]) + data[position + 1 :]

    return flip


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated-to-empty": lambda data: b"",
    "truncated-to-half": lambda data: data[: len(data) // 2],
    "last-byte-missing": lambda data: data[:-1],
    "first-byte-flipped": _flip(lambda n: 0),
    "header-byte-flipped": _flip(lambda n: 12),
    "middle-byte-flipped": _flip(lambda n: n // 2),
    "last-byte-flipped": _flip(lambda n: n - 1),
    "byte-appended": lambda data: data + b"\0",
}


#: Corruptions that leave the value intact: the sampled-data checksum of the trailer is only
#: used for arrays over 16 MiB, so a flip in it changes nothing that is read.
HARMLESS = {("array", "last-byte-flipped")}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_corrupt_entry_is_detected_reported_and_recomputed(
    tmp_path: Path, kind: str, corruption: str
) -> None:
    item = KINDS[kind]
    folder, side = tmp_path / "cache", tmp_path / "side"
    side.mkdir()
    sweep(folder)
    path = entry_of(folder, item)
    path.write_bytes(CORRUPTIONS[corruption](path.read_bytes()))
    count("corruption cases")

    # read-only: reported by name, never returned
    reader = ReliabilityPayload(infra={"backend": "Cached", "folder": folder, "mode": "read-only"})
    handle = reader.lookup(item)
    if (kind, corruption) in HARMLESS:
        assert handle.status == "success"
        assert same(reader.run(item), expected(item))
        return
    assert handle.status is None
    with pytest.raises((KeyError, RuntimeError), match=f"{handle.uid}.*corrupt"):
        handle.result()
    with pytest.raises(RuntimeError, match=f"{handle.uid}.*corrupt.*read-only"):
        reader.run(item)

    # cached: recomputed once and replaced; every other item untouched
    step = ReliabilityPayload(side_effects=str(side), infra={"backend": "Cached", "folder": folder})
    if fails(item):
        with pytest.raises(ItemFailed):
            step.run(item)
    else:
        assert same(step.run(item), expected(item))
    assert computations(side) == {item: 1}
    found = audit_steps(folder, ITEMS)
    count("wrong values returned", len(found.wrong))
    assert (found.complete, found.wrong) == (len(ITEMS), [])


def test_deleted_config_and_lock_folders_change_nothing(tmp_path: Path) -> None:
    folder, side = tmp_path / "cache", tmp_path / "side"
    side.mkdir()
    sweep(folder)
    (step_folder,) = (config.parent for config in folder.glob("*/config.json"))
    (step_folder / "config.json").unlink()
    (locks,) = step_folder.glob("code-*/locks")
    shutil.rmtree(locks)
    count("corruption cases")
    found = audit_steps(folder, ITEMS)
    assert (found.complete, found.wrong) == (len(ITEMS), [])
    sweep(folder, side)
    assert computations(side) == {}  # nothing recomputed


# ---------------------------------------------------------------- unreadable entries


def test_permission_000_entry_as_a_real_user(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip(
            "running as root: permission 000 does not block reads, so the entry stays "
            "readable; test_unreadable_entry_* simulate the failing open instead"
        )
    folder = tmp_path / "cache"
    sweep(folder)
    path = entry_of(folder, 1)
    path.chmod(0)
    try:
        reader = ReliabilityPayload(
            infra={"backend": "Cached", "folder": folder, "mode": "read-only"}
        )
        with pytest.raises((RuntimeError, OSError), match=path.stem):
            reader.run(1)
        assert same(sweep(folder).run(1), expected(1))
    finally:
        path.chmod(0o644)


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Files whose inode is in the returned set fail to open with EACCES (permission 000).

    Like a real permission, it belongs to the file, not to its name: an entry renamed over
    it is readable.
    """
    inodes: set[int] = set()
    real_open = open

    def failing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if os.stat(file).st_ino in inodes:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(_store, "open", failing_open, raising=False)
    return inodes


@pytest.mark.parametrize("kind", ["array", "dict"])
def test_unreadable_entry_in_read_only_mode_is_a_clear_error(
    tmp_path: Path, unreadable: set[int], kind: str
) -> None:
    folder = tmp_path / "cache"
    sweep(folder)
    path = entry_of(folder, KINDS[kind])
    unreadable.add(path.stat().st_ino)
    count("corruption cases")
    reader = ReliabilityPayload(infra={"backend": "Cached", "folder": folder, "mode": "read-only"})
    with pytest.raises((RuntimeError, OSError), match=path.stem):
        reader.run(KINDS[kind])


@pytest.mark.parametrize("kind", ["array", "dict"])
def test_unreadable_entry_in_cached_mode_is_recomputed(
    tmp_path: Path, unreadable: set[int], kind: str
) -> None:
    folder, side = tmp_path / "cache", tmp_path / "side"
    side.mkdir()
    sweep(folder)
    path = entry_of(folder, KINDS[kind])
    unreadable.add(path.stat().st_ino)
    count("corruption cases")
    step = ReliabilityPayload(side_effects=str(side), infra={"backend": "Cached", "folder": folder})
    assert same(step.run(KINDS[kind]), expected(KINDS[kind]))
    assert computations(side) == {KINDS[kind]: 1}
    unreadable.clear()
    assert audit_steps(folder, ITEMS).complete == len(ITEMS)


# ---------------------------------------------------------------- full disk


class _FullDisk:
    """Stands for the ``os`` module in the write path: writes fail with ENOSPC past a budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        size = len(memoryview(data))
        if size > self.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= size
        return os.write(fd, data)


@pytest.mark.parametrize(
    "budget",
    [0, 100_000, 1_000_000],
)
def test_full_disk_fails_clearly_and_keeps_every_written_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    folder = tmp_path / "cache"
    monkeypatch.setattr(_durable, "os", _FullDisk(budget))
    with pytest.raises(OSError, match="No space left") as raised:
        sweep(folder)
    assert raised.value.errno == errno.ENOSPC
    count("corruption cases")
    found = audit_steps(folder, ITEMS)
    assert (found.corrupt, found.wrong) == (0, [])
    assert [p.name for p in folder.glob("*/*/locks/*.lock")] == []
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
    before = {p.name: p.read_bytes() for p in folder.glob("*/cache/*")}
    monkeypatch.setattr(_durable, "os", _FullDisk(0))
    forced = ReliabilityPayload(infra={"backend": "Cached", "folder": folder, "mode": "force"})
    with pytest.raises(OSError, match="No space left"):
        forced.run_many(ITEMS)
    count("corruption cases")
    assert {p.name: p.read_bytes() for p in folder.glob("*/cache/*")} == before


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
    assert [p.name for p in folder.glob("*/*/locks/*.lock")] == []
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


def _experiment(folder: Path, side: Path) -> Experiment:
    return Experiment(
        "corrupt",
        "reliability_steps:counted",
        explicit([{"i": i} for i in range(6)]),
        replicates=2,
        context={"side_effects": str(side)},
        folder=folder,
        progress=False,
    )


def test_lost_index_and_corrupt_run_entry_rebuild_to_the_clean_results(tmp_path: Path) -> None:
    folder, side = tmp_path / "exp", tmp_path / "side"
    side.mkdir()
    clean = metrics_by_run(_experiment(folder, side).run())
    entries = sorted(folder.glob("cache/*/*/cache/*.pkl"))
    assert len(entries) == len(clean)
    entries[0].write_bytes(entries[0].read_bytes()[:-3])  # one record truncated
    for path in folder.glob("index.sqlite*"):
        path.unlink()
    count("corruption cases")
    before = sum(computations(side).values())
    assert metrics_by_run(_experiment(folder, side).run()) == clean
    assert sum(computations(side).values()) == before + 1  # only the corrupt run again


@pytest.mark.parametrize("damage", ["truncated-with-garbage", "overwritten"])
def test_corrupt_index_is_reported_by_name(tmp_path: Path, damage: str) -> None:
    folder, side = tmp_path / "exp", tmp_path / "side"
    side.mkdir()
    clean = metrics_by_run(_experiment(folder, side).run())
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
        _experiment(folder, side).run()
    # the remedy the message gives works: the index is rebuilt, nothing runs again
    for path in folder.glob("index.sqlite*"):
        path.unlink()
    before = computations(side)
    assert metrics_by_run(_experiment(folder, side).run()) == clean
    assert computations(side) == before
