"""Lock files marking items that a process is computing, with a heartbeat.

A lock is ``locks/<uid>.lock``, created exclusively (``O_EXCL``) and holding the host, the pid
and the time. While held, a daemon thread refreshes its modification time every
``HEARTBEAT_SECONDS``. A lock is stale, and may be taken over, when its process is gone
(same host, pid not alive) or its heartbeat is older than ``STALE_SECONDS`` (another host
that died). An empty lock (its creator died between creating it and writing its owner line) is
stale after ``EMPTY_GRACE_SECONDS``; a lock holding part of an entry (its worker died while
writing the entry into it) once it missed ``MISSED_HEARTBEATS`` heartbeats. A lock or guard
dated further ahead than ``STALE_SECONDS`` was copied from a machine whose clock runs ahead
(``rsync -a`` keeps times): it counts as old, not as fresh until that time comes.

Taking over a stale lock is exclusive: recoverers of one item are serialised by a guard file,
``.<uid>.lock.takeover``, created with ``O_EXCL``. Under it the recoverer looks again whether
the lock is stale (another recoverer may have replaced it meanwhile by a fresh lock of its
own), removes it and creates its own lock, then removes the guard. Locks are removed only
by their owner or under the guard, so two processes never both hold an item. A guard whose
recoverer died (within a few system calls) is broken once older than ``TAKEOVER_SECONDS``.
The normal path (no stale lock) never touches the guard.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Literal

HEARTBEAT_SECONDS = 20.0
STALE_SECONDS = 120.0
#: A lock whose content does not name its owner (a worker died right after creating it, or
#: while writing the entry into it) is stale once it missed this many heartbeats: a live
#: owner refreshes it every ``HEARTBEAT_SECONDS``, even while it writes the entry.
MISSED_HEARTBEATS = 2
#: An empty lock exists only between its creation and the write of its owner line, one system
#: call later: an entry written over a lock is never empty (it starts with a magic, and is
#: written over the owner line, then cut to its length). An empty lock older than this
#: belongs to a process that died in between (a broken process pool terminating its workers).
EMPTY_GRACE_SECONDS = 2.0
#: A takeover guard is held for a few system calls (a stat, a read, an unlink, the creation
#: of the new lock). One older than this was left by a recoverer that died: it is broken.
#: Far longer than the section, so that a recoverer merely descheduled keeps its guard.
TAKEOVER_SECONDS = 10.0
HOST = socket.gethostname()
_HOST_JSON = json.dumps(HOST)

_held: set[str] = set()
_held_guard = threading.Lock()
_heartbeat: threading.Thread | None = None


def _beat() -> None:
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        with _held_guard:
            paths = list(_held)
        for path in paths:
            with contextlib.suppress(OSError):  # released meanwhile
                os.utime(path)


def _start_heartbeat() -> None:
    global _heartbeat
    if _heartbeat is None or not _heartbeat.is_alive():
        _heartbeat = threading.Thread(target=_beat, name="assay-steps-heartbeat", daemon=True)
        _heartbeat.start()


def lock_path(lock_folder: str | Path, uid: str) -> str:
    """Return the path of the lock file of item ``uid`` (a string: cheaper than pathlib)."""
    return f"{lock_folder}{os.sep}{uid}.lock"


def read_owner(path: str) -> dict[str, object] | None:
    """Return the content of a lock file, or None if it is gone or unreadable."""
    try:
        with open(path, "rb") as f:
            owner = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but belongs to someone else
        pass
    # A zombie has ended (killed, say) and only waits for its parent to collect it, which a
    # parent busy waiting for this very item would never do.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:  # no /proc here: trust the signal test
        return True
    return stat.rsplit(b")", 1)[-1].split()[:1] not in ([b"Z"], [b"X"])


def _age(mtime: float) -> float:
    """Seconds since ``mtime``; infinite for a time further ahead than clocks may disagree.

    A heartbeat stamps its lock with the clock of the file system's writer, which agrees with
    ours within ``STALE_SECONDS`` (the staleness limit assumes as much). A time further ahead
    was not stamped here: a lock or guard copied with its times kept (``rsync -a``, ``cp -a``)
    from a machine whose clock runs ahead. Taken as it is, it would hold its item until our
    clock caught up with that machine's, however long that takes.
    """
    age = time.time() - mtime
    return math.inf if age < -STALE_SECONDS else age


def is_stale(path: str) -> bool:
    """Return whether the lock at ``path`` exists but its owner is gone."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return False
    age = _age(stat.st_mtime)
    if age > STALE_SECONDS:
        return True
    if stat.st_size == 0:  # its creator died before writing its owner line, or is writing it
        return age > EMPTY_GRACE_SECONDS
    owner = read_owner(path)
    if owner is None:  # being written, or holding a partial entry: trust the heartbeat age
        return age > MISSED_HEARTBEATS * HEARTBEAT_SECONDS
    pid = owner.get("pid")
    return owner.get("host") == HOST and isinstance(pid, int) and not _pid_alive(pid)


def lock_state(lock_folder: str | Path, uid: str) -> Literal["live", "stale"] | None:
    """Return ``"live"`` if a process holds item ``uid``, ``"stale"`` if its owner is gone.

    None when there is no lock file (never taken, or released: with or without an entry).
    """
    path = lock_path(lock_folder, uid)
    if not os.path.exists(path):
        return None
    if is_stale(path):
        # Another process taking it over right now will hold it in a moment.
        return "live" if _guard_held(_guard_path(path)) else "stale"
    # Released between the two looks: no lock any more, rather than a live one.
    return "live" if os.path.exists(path) else None


def is_live(lock_folder: str | Path, uid: str) -> bool:
    """Return whether some process holds a live lock on item ``uid``."""
    return lock_state(lock_folder, uid) == "live"


def _guard_path(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.takeover")


def _guard_held(guard: str) -> bool:
    """Return whether a live recoverer holds the takeover guard ``guard``."""
    try:
        return _age(os.stat(guard).st_mtime) <= TAKEOVER_SECONDS
    except FileNotFoundError:
        return False


def _break_guard(guard: str) -> None:
    """Remove the guard ``guard`` if it is still the stale one (its recoverer died).

    Renamed away first, then checked: had another process broken the stale guard and taken a
    fresh one meanwhile, the fresh guard is what was moved, and it is put back.
    """
    moved = f"{guard}.{uuid.uuid4().hex[:8]}.stale"
    try:
        os.rename(guard, moved)
    except FileNotFoundError:
        return
    try:
        fresh = _age(os.stat(moved).st_mtime) <= TAKEOVER_SECONDS
        if fresh:
            with contextlib.suppress(FileExistsError):
                os.link(moved, guard)
    finally:
        os.unlink(moved)


def _create(path: str, content: bytes) -> bool:
    """Create the lock file ``path`` exclusively with ``content``; False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, content)
    except BaseException as error:  # e.g. a full disk: leave no ownerless lock behind
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(error, OSError) and error.strerror and error.filename is None:
            error.filename = path  # a failed write names no file: a full disk must say where
        raise
    os.close(fd)
    return True


def _take_over(path: str, content: bytes) -> bool | None:
    """Replace the stale lock ``path`` by a lock of ours, exclusively.

    Returns:
        True if this process now holds the lock; False if another process holds it or is
        taking it over; None if the caller should look again (the lock or a dead
        recoverer's guard went away).

    """
    guard = _guard_path(path)
    try:
        fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if _guard_held(guard):
            return False  # another process is taking it over: it will hold it in a moment
        _break_guard(guard)
        return None
    os.close(fd)
    try:
        # Judged stale before the guard was ours: another recoverer may have taken the item
        # over since, its fresh lock now standing where the stale one was.
        if not is_stale(path):
            return None if not os.path.exists(path) else False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        # False if a process that never saw the stale lock created its lock meanwhile.
        return _create(path, content)
    finally:
        with contextlib.suppress(FileNotFoundError):  # broken, had this process stalled
            os.unlink(guard)


def try_acquire(lock_folder: str | Path, uid: str) -> bool:
    """Take the lock of item ``uid``; False if a live process holds it."""
    path = lock_path(lock_folder, uid)
    # Formatted by hand: json.dumps would cost more than the file creation itself.
    content = f'{{"host": {_HOST_JSON}, "pid": {os.getpid()}, "time": {time.time()}}}'.encode()
    for _ in range(3):  # again after the lock was released, or a dead recoverer's guard broken
        if _create(path, content):
            break
        state = lock_state(lock_folder, uid)
        if state is None:
            continue  # released since: take it now
        if state == "live":
            return False
        taken = _take_over(path, content)
        if taken is None:
            continue
        if not taken:
            return False
        break
    else:
        return False
    with _held_guard:
        _held.add(path)
    _start_heartbeat()
    return True


def release(lock_folder: str | Path, uid: str, *, renamed: bool = False) -> None:
    """Release the lock of item ``uid`` held by this process.

    Args:
        lock_folder: Folder of the lock files.
        uid: Item uid.
        renamed: The lock file was already renamed into the cache as the item's entry.

    """
    path = lock_path(lock_folder, uid)
    with _held_guard:
        _held.discard(path)
    if not renamed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
