"""A cache folder moved or copied to another place, another machine, and back.

`rsync -a` and `cp -a` keep the modification times of the files they copy: a lock file copied
while a sweep was writing carries the clock of the machine it comes from, which may run ahead
of this one. Such a lock must not hold its item for as long as the clocks disagree.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from assay_steps import _locks
from steps_testkit import Mult, calls

#: A clock one hour ahead of this machine's (a laptop on another time source, say).
AHEAD = 3600.0


def plant(path: Path, content: bytes, age: float) -> Path:
    """Write ``path`` with ``content``, last modified ``age`` seconds ago (negative: ahead)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def foreign_owner() -> bytes:
    return json.dumps({"host": "another-machine", "pid": 4242, "time": time.time()}).encode()


def test_a_moved_cache_serves_every_entry_from_its_new_place(tmp_path: Path) -> None:
    laptop, cluster = tmp_path / "laptop", tmp_path / "scratch" / "ünïcode 文件"
    assert list(Mult(infra={"backend": "Cached", "folder": laptop}).run_many([1, 2, 3])) == [
        2,
        4,
        6,
    ]
    shutil.move(laptop, cluster)
    moved = Mult(infra={"backend": "Cached", "folder": cluster})
    assert [moved.lookup(v).status for v in (1, 2, 3)] == ["success"] * 3
    before = len(calls("Mult"))
    assert list(moved.run_many([1, 2, 3])) == [2, 4, 6]
    assert len(calls("Mult")) == before  # nothing recomputed: keys ignore the folder's path


@pytest.mark.parametrize("content", [b"", b"ASSAYP1\n partial entry", None])
def test_a_copied_lock_from_a_clock_far_ahead_is_stale(tmp_path: Path, content: bytes) -> None:
    # None: a lock naming its owner on another machine
    plant(Path(_locks.lock_path(tmp_path, "item")), content or foreign_owner(), age=-AHEAD)
    assert _locks.lock_state(tmp_path, "item") == "stale"


def test_a_step_computes_an_item_whose_copied_lock_is_from_a_clock_ahead(
    tmp_path: Path,
) -> None:
    step = Mult(infra={"backend": "Cached", "folder": tmp_path})
    handle = step.lookup(5)
    plant(Path(_locks.lock_path(handle.paths.lock_folder, handle.uid)), foreign_owner(), -AHEAD)
    assert handle.status is None  # nobody is computing it
    assert step.run(5) == 10
    assert calls("Mult") == [5]


def test_a_copied_takeover_guard_from_a_clock_ahead_is_broken(tmp_path: Path) -> None:
    lock = plant(Path(_locks.lock_path(tmp_path, "item")), b"", age=10.0)
    plant(tmp_path / ".item.lock.takeover", b"", age=-AHEAD)
    assert _locks.lock_state(tmp_path, "item") == "stale"
    assert _locks.try_acquire(tmp_path, "item")
    try:
        assert json.loads(lock.read_bytes())["pid"] == os.getpid()
    finally:
        _locks.release(tmp_path, "item")


def test_a_fresh_lock_of_another_machine_stays_live(tmp_path: Path) -> None:
    # Its owner's heartbeat keeps it fresh: a clock a little ahead must not make it stale.
    plant(Path(_locks.lock_path(tmp_path, "item")), foreign_owner(), age=-5.0)
    assert _locks.lock_state(tmp_path, "item") == "live"
    assert not _locks.try_acquire(tmp_path, "item")
