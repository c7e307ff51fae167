"""Claims: which items a process is computing, one file per chunk of items, not per item.

A claim is ``claims/<name>.claim``: a first line naming its owner (host, pid, the process's
start time, its heartbeat file), then the claimed uids, one per line. It is written under a
temporary name and renamed into place, so it is read whole or not at all, and never changes
afterwards. It is removed by its owner when the chunk is done.

**Who computes an item that two claims name.** Claims are ordered by the time the file system
gave them when they appeared (their ``ctime``, then their name). A claimer yields every item
that an older live claim names. This is exclusive without a lock: if claim A appeared before
claim B, then A is older, and B's owner, who lists the claims after B appeared, sees A and
yields; A's owner, listing before B appeared, does not see B. Two claims of the same instant
(file system times have a granularity) both yield their common items, which then come round
again: an item may be computed a round later, never twice.

**Staleness.** A claim is stale only when its owner is dead: on the same host, when its pid
is gone (or is another process now: the start time differs) — a paused, ``SIGSTOP``ped process
is alive and keeps its claims however long; from another host, when its owner's heartbeat file
(touched every ``HEARTBEAT_SECONDS``) is older than ``STALE_SECONDS``. Stale claims are
ignored and removed by whoever sees them. No POSIX lock is taken, so this works across hosts on
NFS and Lustre.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from ._arrays import open_regular
from ._durable import is_old_temporary
from ._frames import CorruptEntryError
from ._segments import create_exclusive

CLAIMS = "claims"
HEARTBEAT_SECONDS = 20.0
STALE_SECONDS = 120.0
HOST = socket.gethostname()
_TOKEN = uuid.uuid4().hex[:8]
_counter = itertools.count()
_SUFFIX = ".claim"
_BEAT = ".beat"
#: A claim names at most a chunk of uids of at most 200 characters, and its owner line.
_MAX_CLAIM_BYTES = 2**20

_beats: set[str] = set()  # heartbeat files of this process
_holding: dict[str, int] = {}  # heartbeat file -> claims this process holds in its folder
_beats_guard = threading.Lock()
_heartbeat: threading.Thread | None = None


def _start_time(pid: int) -> str | None:
    """Return the start time of process ``pid`` (tells a pid reused by a new process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[-1].split()
    except OSError:
        return None
    if fields[:1] in ([b"Z"], [b"X"]):
        return "ended"  # a zombie has ended, only waiting for its parent to collect it
    return fields[19].decode() if len(fields) > 19 else None


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Return whether process ``pid`` (started at ``started``, if known) is alive here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        pass
    now = _start_time(pid)
    if now == "ended":
        return False
    return started is None or now is None or now == started


def _age(mtime: float) -> float:
    """Seconds since ``mtime``; infinite for a time further ahead than clocks may disagree."""
    age = time.time() - mtime
    return math.inf if age < -STALE_SECONDS else age


def _beat_loop() -> None:
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        with _beats_guard:
            paths = list(_beats)
        for path in paths:
            with contextlib.suppress(OSError):
                os.utime(path)


def _heartbeat_file(folder: str) -> str:
    """Return this process's heartbeat file in ``folder``, created and beating.

    It lives while the process holds claims in ``folder`` (each call counts one, and
    ``_drop_heartbeat`` one less): a process that ends without running its exit
    handlers (``os._exit``, as pool workers do) leaves none behind once its chunks are done.
    """
    global _heartbeat
    name = f"{HOST}-{os.getpid()}-{_TOKEN}{_BEAT}"
    path = os.path.join(folder, name)
    with _beats_guard:
        if path not in _beats:
            with contextlib.suppress(FileExistsError):
                os.close(create_exclusive(path))
            _beats.add(path)
        _holding[path] = _holding.get(path, 0) + 1
        if _heartbeat is None or not _heartbeat.is_alive():
            _heartbeat = threading.Thread(target=_beat_loop, name="assay-heartbeat", daemon=True)
            _heartbeat.start()
    return name


def _drop_heartbeat(path: str) -> None:
    """Count one claim fewer in the heartbeat file's folder; remove it at the last one."""
    with _beats_guard:
        left = _holding.get(path, 0) - 1
        if left > 0:
            _holding[path] = left
            return
        _holding.pop(path, None)
        _beats.discard(path)
    with contextlib.suppress(OSError):
        os.unlink(path)


@atexit.register
def _remove_heartbeats() -> None:
    with _beats_guard:
        for path in _beats:
            with contextlib.suppress(OSError):
                os.unlink(path)
        _beats.clear()


def _after_fork() -> None:
    global _beats_guard, _heartbeat, _TOKEN
    _beats.clear()  # the parent's files: the child beats its own
    _holding.clear()
    _beats_guard = threading.Lock()
    _heartbeat = None
    _TOKEN = uuid.uuid4().hex[:8]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@dataclass(frozen=True)
class _Seen:
    key: tuple[int, str]
    owner: dict[str, object]
    uids: frozenset[str]


# Claims are immutable once in place: what was read of one stays true until it is removed.
_seen: dict[str, _Seen] = {}


def _read_claim(folder: str, name: str) -> _Seen | None:
    seen = _seen.get(name)
    if seen is not None:
        return seen
    path = os.path.join(folder, name)
    try:
        fd = open_regular(path)
    except (FileNotFoundError, CorruptEntryError):
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if info.st_size > _MAX_CLAIM_BYTES:  # not a claim assay wrote: never read whole
            return None
        raw = f.read(_MAX_CLAIM_BYTES)
    head, _, body = raw.partition(b"\n")
    try:
        owner = json.loads(head)
    except ValueError:
        return None
    if not isinstance(owner, dict):
        return None
    seen = _Seen((info.st_ctime_ns, name), owner, frozenset(body.decode().split("\n")) - {""})
    _seen[name] = seen
    return seen


def _live(folder: str, owner: dict[str, object]) -> bool:
    pid = owner.get("pid")
    if owner.get("host") == HOST and isinstance(pid, int):
        started = owner.get("started")
        return pid_alive(pid, started if isinstance(started, str) else None)
    beat = owner.get("beat")
    if not isinstance(beat, str) or not _is_beat_of(beat, owner):
        return False
    try:
        return _age(os.stat(os.path.join(folder, beat)).st_mtime) <= STALE_SECONDS
    except OSError:
        return False


def _is_beat_of(beat: object, owner: dict[str, object]) -> bool:
    """Return whether ``beat`` names a heartbeat file of ``owner`` (and nothing else)."""
    return (
        isinstance(beat, str)
        and beat.endswith(_BEAT)
        and not beat.startswith(".")
        and os.sep not in beat
        and beat.startswith(f"{owner.get('host')}-{owner.get('pid')}-")
    )


def _beat_is_dead(folder: str, name: str) -> bool:
    """Return whether heartbeat file ``name`` belongs to a process that is gone."""
    parts = name[: -len(_BEAT)].rsplit("-", 2)  # <host>-<pid>-<token>; hosts may hold "-"
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    if parts[0] == HOST:
        return not pid_alive(int(parts[1]))
    try:
        return _age(os.stat(os.path.join(folder, name)).st_mtime) > STALE_SECONDS
    except OSError:
        return False


def _is_leftover(folder: str, name: str) -> bool:
    """Return whether ``name`` is a dead process's heartbeat or a killed writer's temporary."""
    path = os.path.join(folder, name)
    if name.endswith(_BEAT) and not name.startswith("."):
        return path not in _beats and _beat_is_dead(folder, name)
    return is_old_temporary(folder, name)


def _remove_leftovers(folder: str, names: list[str]) -> None:
    """Remove heartbeat files of dead processes and temporary files of killed ones."""
    for name in names:
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
            if _is_leftover(folder, name):
                os.unlink(os.path.join(folder, name))


def live_claims(entries_folder: str) -> list[_Seen]:
    """Return the live claims of an entries folder, removing the stale ones seen."""
    folder = os.path.join(entries_folder, CLAIMS)
    try:
        listing = os.listdir(folder)
    except FileNotFoundError:
        return []
    names = [n for n in listing if n.endswith(_SUFFIX) and not n.startswith(".")]
    if len(listing) > len(names):
        _remove_leftovers(folder, [n for n in listing if not n.endswith(_SUFFIX)])
    live = []
    for name in names:
        seen = _read_claim(folder, name)
        if seen is None:
            continue
        if _live(folder, seen.owner):
            live.append(seen)
        else:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
            _seen.pop(name, None)
    for gone in set(_seen) - set(names):
        _seen.pop(gone, None)
    return live


def running(entries_folder: str) -> set[str]:
    """Return the uids that live claims name (being computed right now)."""
    held: set[str] = set()
    for seen in live_claims(entries_folder):
        held.update(seen.uids)
    return held


class Claim:
    """A chunk of items this process claimed; ``granted`` lists those it is to compute.

    Examples:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> claim = Claim.take(folder, ["a", "b"])
        >>> claim.granted, "a" in running(folder)
        (['a', 'b'], True)
        >>> claim.release(); running(folder)
        set()

    """

    def __init__(self, path: str, granted: list[str], beat: str = "") -> None:
        self.path = path
        self.granted = granted
        self._beat = beat  # the heartbeat file this claim keeps alive ("" once released)

    @classmethod
    def take(cls, entries_folder: str, uids: Iterable[str]) -> Claim:
        """Claim ``uids``; those an older live claim names are not granted."""
        uids = list(uids)
        folder = os.path.join(entries_folder, CLAIMS)
        os.makedirs(folder, exist_ok=True)
        beat = os.path.join(folder, _heartbeat_file(folder))
        try:
            name = _write_claim(folder, uids, os.path.basename(beat))
        except BaseException:
            _drop_heartbeat(beat)
            raise
        path = os.path.join(folder, name)
        mine = _read_claim(folder, name)
        if mine is None:  # pragma: no cover - removed by another process as we made it
            return cls(path, [], beat)
        held: set[str] = set()
        for other in live_claims(entries_folder):
            # At the same instant, each yields to the other: one of the two may not have
            # seen the other when it listed, so only both yielding is safe.
            if other.key[0] <= mine.key[0] and other.key[1] != name:
                held.update(other.uids)
        return cls(path, [uid for uid in uids if uid not in held], beat)

    def release(self) -> None:
        """Remove the claim (the chunk is done, or given up)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        _seen.pop(os.path.basename(self.path), None)
        if self._beat:
            _drop_heartbeat(self._beat)
            self._beat = ""


def _write_claim(folder: str, uids: list[str], beat: str) -> str:
    """Write a claim on ``uids`` under a temporary name, rename it into place; return its name."""
    owner = {
        "host": HOST,
        "pid": os.getpid(),
        "started": _start_time(os.getpid()),
        "beat": beat,
        "time": time.time(),
    }
    name = f"{HOST}-{os.getpid()}-{_TOKEN}-{next(_counter)}{_SUFFIX}"
    path = os.path.join(folder, name)
    content = (json.dumps(owner) + "\n" + "\n".join(uids)).encode()
    tmp = os.path.join(folder, f".{name}.tmp")
    fd = create_exclusive(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.strerror and error.filename is None:
            error.filename = path  # a full disk says where
        raise
    return name
