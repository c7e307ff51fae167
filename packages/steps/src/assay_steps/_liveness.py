"""Whether a process is writing an entries folder now: live claims, live writers, fresh locks.

A segment's writer is alive when it is this process's open segment, a live process of this
host, or, on another host, one whose segment or heartbeat changed lately. A compaction leaves
the segments of live writers alone; ``assay cache`` commands say a folder is in use.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from ._claims import CLAIMS, STALE_SECONDS, _read_claim, pid_alive
from ._claims import _live as _claim_live
from ._segments import _HOST, SEGMENTS, SUFFIX, _writers

_BEAT = ".beat"
_LOCK_FRESH_SECONDS = 120.0  # locks of the older layout were refreshed every 20 s


def _list_segments(segments_folder: str) -> list[tuple[str, int, float]]:
    """Return ``(name, size, mtime)`` of each segment, sorted by name (links etc. are left out)."""
    found = []
    try:
        listing = os.scandir(segments_folder)
    except FileNotFoundError:
        return []
    with listing:
        for entry in listing:
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIX):
                continue
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                found.append((entry.name, info.st_size, info.st_mtime))
    return sorted(found)


def _own_segments() -> set[str]:
    """Return the segments this process is appending to (in any folder, by any path to it)."""
    pid = os.getpid()
    return {writer.name for writer in list(_writers.values()) if writer.pid == pid}


def _owner(name: str) -> tuple[str, int] | None:
    """Return ``(host, pid)`` from a segment name ``<time>-<host>-<pid>-<token>.seg``."""
    stem = name.removesuffix(SUFFIX)
    _, _, rest = stem.partition("-")
    host, _, _ = rest.rpartition("-")  # the token
    host, _, pid = host.rpartition("-")
    return (host, int(pid)) if host and pid.isdigit() else None


def _writer_live(folder: str, name: str, mtime: float, now: float, writing: set[str]) -> bool:
    """Return whether the writer of segment ``name`` may still append to it."""
    owner = _owner(name)
    if owner is not None and owner[0] == _HOST:
        if owner[1] == os.getpid():
            return name in writing  # this process's other segments are closed
        return pid_alive(owner[1])
    if now - mtime <= STALE_SECONDS:
        return True
    return owner is not None and _beating(folder, *owner, now)


def _beating(folder: str, host: str, pid: int, now: float) -> bool:
    """Return whether process ``pid`` of ``host`` has a fresh heartbeat in ``folder``."""
    try:
        names = os.listdir(os.path.join(folder, CLAIMS))
    except OSError:
        return False
    for name in names:
        if _beat_owner(name) != (host, pid):
            continue
        try:
            if now - os.lstat(os.path.join(folder, CLAIMS, name)).st_mtime <= STALE_SECONDS:
                return True
        except FileNotFoundError:  # removed by its process as it ended
            continue
    return False


def _beat_owner(name: str) -> tuple[str, int] | None:
    """Return ``(host as in segment names, pid)`` of a heartbeat file ``<host>-<pid>-<token>``."""
    if not name.endswith(_BEAT):
        return None
    host, _, _ = name.removesuffix(_BEAT).rpartition("-")  # the token
    host, _, pid = host.rpartition("-")
    if not host or not pid.isdigit():
        return None
    return re.sub(r"[^A-Za-z0-9_.-]", "_", host)[:64] or "host", int(pid)


def _live_claims(folder: str) -> int:
    """Count the live claims of ``folder`` without removing the stale ones (read only)."""
    claims = os.path.join(folder, CLAIMS)
    try:
        names = [n for n in os.listdir(claims) if n.endswith(".claim") and n[0] != "."]
    except FileNotFoundError:
        return 0
    seen = (_read_claim(claims, name) for name in names)
    return sum(1 for s in seen if s is not None and _claim_live(claims, s.owner))


def in_use(entries_folder: str | Path) -> bool:
    """Return whether a process is computing or writing entries of ``entries_folder`` now.

    In use means: a live claim, a segment whose writer is alive, or a lock of the older
    layout refreshed in the last two minutes. Nothing is changed.

    Examples:
        >>> in_use("no-such-folder")
        False

    """
    folder = os.path.abspath(entries_folder)
    if _live_claims(folder) or _fresh_lock(folder):
        return True
    now, writing = time.time(), _own_segments()
    segments = _list_segments(os.path.join(folder, SEGMENTS))
    return any(_writer_live(folder, n, m, now, writing) for n, _, m in segments)


def _fresh_lock(folder: str) -> bool:
    """Return whether a lock of the older layout was refreshed lately (its run goes on)."""
    locks = os.path.join(folder, "locks")
    try:
        names = os.listdir(locks)
    except OSError:
        return False
    cutoff = time.time() - _LOCK_FRESH_SECONDS
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # released meanwhile
            if os.lstat(os.path.join(locks, name)).st_mtime >= cutoff:
                return True
    return False
