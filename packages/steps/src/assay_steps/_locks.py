"""Lock files marking items that a process is computing, with a heartbeat.

A lock is ``locks/<uid>.lock``, created exclusively (``O_EXCL``) and holding the host, the pid
and the time. While held, a daemon thread refreshes its modification time every
``HEARTBEAT_SECONDS``. A lock is stale, and may be taken over, when its process is gone
(same host, pid not alive) or its heartbeat is older than ``STALE_SECONDS`` (another host
that died). A lock whose content does not name its owner (its worker died after creating it,
or while writing the entry into it) is stale once it missed ``MISSED_HEARTBEATS`` heartbeats.
Takeover renames the stale file away first, so two recovering processes cannot
both believe they hold the item.
"""

from __future__ import annotations

import contextlib
import json
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


def is_stale(path: str) -> bool:
    """Return whether the lock at ``path`` exists but its owner is gone."""
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_SECONDS:
        return True
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
        return "stale"
    # Released between the two looks: no lock any more, rather than a live one.
    return "live" if os.path.exists(path) else None


def is_live(lock_folder: str | Path, uid: str) -> bool:
    """Return whether some process holds a live lock on item ``uid``."""
    return lock_state(lock_folder, uid) == "live"


def try_acquire(lock_folder: str | Path, uid: str) -> bool:
    """Take the lock of item ``uid``; False if a live process holds it."""
    path = lock_path(lock_folder, uid)
    # Formatted by hand: json.dumps would cost more than the file creation itself.
    content = f'{{"host": {_HOST_JSON}, "pid": {os.getpid()}, "time": {time.time()}}}'.encode()
    for _ in range(3):  # again after a stale lock was moved away, or the lock was released
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            state = lock_state(lock_folder, uid)
            if state is None:
                continue  # released since: take it now
            if state == "live":
                return False
            # Move the stale lock away; only one recovering process wins the rename.
            folder, name = os.path.split(path)
            try:
                os.replace(path, os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.stale"))
            except FileNotFoundError:
                continue
            for leftover in Path(folder).glob(f".{name}.*.stale"):
                leftover.unlink(missing_ok=True)
            continue
        try:
            os.write(fd, content)
        except BaseException:  # e.g. a full disk: leave no ownerless lock behind
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(fd)
        with _held_guard:
            _held.add(path)
        _start_heartbeat()
        return True
    return False


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
