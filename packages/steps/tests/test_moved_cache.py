"""A cache folder moved, copied or removed: from another place, another machine, and back.

`rsync -a` and `cp -a` keep the modification times of the files they copy: a claim copied
while a sweep was running carries the heartbeat of a machine whose clock may run ahead of
this one. Such a claim must not hold its items for as long as the clocks disagree.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from assay_steps import _catalog
from steps_testkit import Mult, Ramp, calls, infra
from store_testkit import as_a_new_process

#: A clock one hour ahead of this machine's (a laptop on another time source, say).
AHEAD = 3600.0


def foreign_claim(entries_folder: Path, uid: str, beat_age: float) -> Path:
    """A claim of another machine, its heartbeat last touched ``beat_age`` s ago (<0: ahead)."""
    folder = entries_folder / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    beat = folder / "another-machine-4242-abcd1234.beat"
    beat.touch()
    then = time.time() - beat_age
    os.utime(beat, (then, then))
    owner = {"host": "another-machine", "pid": 4242, "beat": beat.name, "time": time.time()}
    path = folder / "another-machine-4242-abcd1234-0.claim"
    path.write_text(json.dumps(owner) + "\n" + uid)
    return path


def test_a_moved_cache_serves_every_entry_from_its_new_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_catalog, "SNAPSHOT_FRAMES", 10)  # an index is saved, and moves too
    laptop, cluster = tmp_path / "laptop", tmp_path / "scratch" / "ünïcode 文件"
    values = list(range(40))
    assert list(Mult(infra=infra(laptop)).run_many(values)) == [2 * v for v in values]
    Ramp(infra=infra(laptop)).run(20000)  # a large array, in a file of its own
    as_a_new_process()
    assert Mult(infra=infra(laptop)).lookup(3).status == "success"  # scans, saves the index
    assert list(laptop.rglob("index"))
    shutil.move(laptop, cluster)
    as_a_new_process()
    moved = Mult(infra=infra(cluster, "read-only"))
    assert [moved.lookup(v).status for v in values] == ["success"] * 40
    assert list(moved.run_many(values)) == [2 * v for v in values]
    np.testing.assert_array_equal(Ramp(infra=infra(cluster)).run(20000), np.arange(20000.0))
    assert len(calls("Mult")) == 40  # nothing recomputed: keys ignore the folder's path


def test_a_copied_cache_and_its_original_go_their_own_ways(tmp_path: Path) -> None:
    original, copy = tmp_path / "original", tmp_path / "copy"
    list(Mult(infra=infra(original)).run_many([1, 2]))
    shutil.copytree(original, copy)
    Mult(infra=infra(copy, "force")).run(1)
    list(Mult(infra=infra(copy)).run_many([3]))
    as_a_new_process()
    assert Mult(infra=infra(original)).lookup(3).status is None
    assert list(Mult(infra=infra(copy, "read-only")).run_many([1, 2, 3])) == [2, 4, 6]
    assert calls("Mult") == [1, 2, 1, 3]


def test_a_cache_folder_removed_while_the_process_runs_stores_new_results_again(
    folder: Path,
) -> None:
    # A notebook: run, delete the cache folder, run again in the same process.
    assert Mult(infra=infra(folder)).run(1) == 2
    shutil.rmtree(folder)
    assert Mult(infra=infra(folder)).run(1) == 2
    assert list(folder.rglob("*.seg")), "the new results reached the disk"
    as_a_new_process()
    assert Mult(infra=infra(folder, "read-only")).run(1) == 2
    assert calls("Mult") == [1, 1]


def test_a_cache_folder_moved_away_while_the_process_runs_keeps_new_results_at_its_path(
    tmp_path: Path,
) -> None:
    here, away = tmp_path / "here", tmp_path / "away"
    assert Mult(infra=infra(here)).run(1) == 2
    shutil.move(here, away)
    assert Mult(infra=infra(here)).run(2) == 4
    as_a_new_process()
    assert Mult(infra=infra(here, "read-only")).run(2) == 4
    assert Mult(infra=infra(away)).lookup(2).status is None  # the moved folder is left alone
    assert calls("Mult") == [1, 2]


@pytest.mark.parametrize(("age", "running"), [(-AHEAD, False), (-5.0, True), (AHEAD, False)])
def test_a_copied_claim_of_another_machine_holds_its_item_only_while_it_beats(
    folder: Path, age: float, running: bool
) -> None:
    # An hour ahead: copied from a machine whose clock runs ahead, it will never beat again
    # here. A few seconds ahead: its owner's clock is a little ahead, and it is beating.
    step = Mult(infra=infra(folder))
    handle = step.lookup(5)
    foreign_claim(handle.paths.entries_folder, handle.uid, age)
    assert handle.status == ("running" if running else None)
    if not running:
        assert step.run(5) == 10
        assert calls("Mult") == [5]


def test_the_same_step_after_its_cache_folder_was_removed_writes_a_whole_folder_again(
    folder: Path,
) -> None:
    # A notebook keeps its step object across the removal: the folder it writes again holds
    # what any folder of assay holds (the marker that tools check, the configuration, the
    # record of the code), not only the entries.
    step = Mult(infra=infra(folder))
    assert step.run(1) == 2
    shutil.rmtree(folder)
    assert step.run(2) == 4
    handle = step.lookup(2)
    assert (folder / ".assay-cache").is_file()
    assert (handle.paths.step_folder / "config.json").is_file()
    assert (handle.paths.entries_folder / "code.json").is_file()
    as_a_new_process()
    assert Mult(infra=infra(folder, "read-only")).run(2) == 4
