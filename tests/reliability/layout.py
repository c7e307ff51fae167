"""The cache layout as the suite sees it: frames in segments, array files, claims, the index.

A code version's entries folder holds ``segments/*.seg`` (frames appended by one process
each), ``arrays/*.npy`` (large arrays, named by an ``ARRAY_FILE`` frame), ``index`` (a saved
catalog, an accelerator only) and ``claims/`` (chunk claims and heartbeat files). The
frames are walked here with the format's constants only (header layout, magic, checksum
length), not with the store's scanner, so that the tests check the store's reader against the
files rather than against itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from pathlib import Path

from assay_steps import _catalog, _claims, _frames, _segments

#: magic "ASF1" | kind u8 | 0 u8 | uid length u16 | stamp u64 | value length u64, then the
#: uid, the value and the checksum (xxh3-128 of all that precedes it in the frame).
HEADER = _frames.HEADER
MAGIC = _frames.MAGIC
CHECKSUM = getattr(_frames, "CHECKSUM", 0)  # bytes after the value
RESULT, ERROR, ARRAY, ARRAY_FILE, DELETED, SEAL = 1, 2, 3, 4, 5, 6
KIND_NAMES = {RESULT: "result", ERROR: "error", ARRAY: "array", ARRAY_FILE: "array-file"}


@dataclasses.dataclass(frozen=True)
class Frame:
    """One whole frame of a segment (not verified: its checksum is the store's to check)."""

    segment: Path
    start: int
    end: int
    kind: int
    uid: str
    stamp: int
    value: bytes

    @property
    def value_start(self) -> int:
        """Offset of the frame's value in its segment."""
        return self.end - CHECKSUM - len(self.value)

    @property
    def uid_start(self) -> int:
        """Offset of the frame's uid in its segment."""
        return self.start + HEADER.size


def encode(kind: int, uid: str, value: bytes, stamp: int) -> bytes:
    """Return a well-formed frame (right checksum), as a writer would append it."""
    return b"".join(bytes(chunk) for chunk in _frames.encode(kind, uid.encode(), stamp, value))


def segment_files(entries: Path) -> list[Path]:
    """The regular segment files of an entries folder, oldest first."""
    folder = entries / "segments"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.seg") if p.is_file() and not p.is_symlink())


def frames(entries: Path) -> list[Frame]:
    """Every whole frame of every segment, in file order; a segment's torn tail is not one."""
    found = []
    for segment in segment_files(entries):
        data = segment.read_bytes()
        offset = 0
        while offset + HEADER.size <= len(data):
            magic, kind, _, uid_len, stamp, value_len = HEADER.unpack_from(data, offset)[:6]
            end = offset + HEADER.size + uid_len + value_len + CHECKSUM
            if magic != MAGIC or end > len(data):
                break
            uid = data[offset + HEADER.size : offset + HEADER.size + uid_len]
            value = data[end - CHECKSUM - value_len : end - CHECKSUM]
            if kind != SEAL:
                found.append(Frame(segment, offset, end, kind, uid.decode(), stamp, value))
            offset = end
    return found


def newest(entries: Path, uid: str) -> Frame | None:
    """The frame of ``uid`` that decides its entry (the highest stamp, later files win ties)."""
    mine = [f for f in frames(entries) if f.uid == uid]
    if not mine:
        return None
    return max(mine, key=lambda f: (f.stamp, f.segment.name, f.start))


def frame_of(entries: Path, uid: str) -> Frame:
    """The newest frame of ``uid``, which must exist and hold an entry."""
    frame = newest(entries, uid)
    assert frame is not None, f"item {uid} has no frame"
    assert frame.kind != DELETED, f"item {uid} was cleared"
    return frame


def array_file(entries: Path, uid: str) -> Path:
    """The ``.npy`` file the entry of ``uid`` names (a large array)."""
    frame = frame_of(entries, uid)
    assert frame.kind == ARRAY_FILE, f"item {uid}: a {KIND_NAMES.get(frame.kind)} frame"
    return entries / "arrays" / frame.value.decode()


def plant_segment(entries: Path, chunks: list[bytes], tag: str = "planted") -> Path:
    """Write a new segment file holding ``chunks`` (named to sort after every other)."""
    folder = entries / "segments"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time_ns():016x}-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}.seg"
    path.write_bytes(b"".join(chunks))
    return path


def new_process() -> None:
    """Forget what this process holds in memory of any cache folder.

    Reads afterwards see the folders as a new process does: the catalogs are rebuilt from the
    files (or the ``index``), and the next write starts a new segment. The descriptors they
    kept open are closed (a file system can then be unmounted).
    """
    for catalog in list(_catalog._catalogs.values()):
        getattr(catalog, "_close_all", lambda: None)()
    for writer in list(_segments._writers.values()):
        getattr(writer, "_close", lambda: None)()
    _catalog._catalogs.clear()
    _segments._writers.clear()
    _claims._seen.clear()


def claim_files(folder: Path) -> list[Path]:
    """The claims in place under ``folder`` (not the temporary files they are written to)."""
    return [p for p in folder.rglob("claims/*.claim") if not p.name.startswith(".")]


def owner_alive(claim: Path) -> bool:
    """Whether the process a claim names (first line: its owner) still runs on this host."""
    owner = json.loads(claim.read_bytes().partition(b"\n")[0])
    assert owner["host"] == _claims.HOST, f"{claim.name}: a claim of another host"
    return _claims.pid_alive(int(owner["pid"]), owner.get("started"))


def temporaries(folder: Path) -> list[Path]:
    """Temporary files under the cache ``folder``: a write that never reached its rename."""
    return [p for p in folder.rglob("*.tmp")]


def dead_heartbeats(folder: Path) -> list[Path]:
    """Heartbeat files of processes of this host that have ended."""
    dead = []
    for path in folder.rglob("claims/*.beat"):
        host, pid = path.name.rsplit("-", 2)[:2]
        if host == _claims.HOST and not _claims.pid_alive(int(pid)):
            dead.append(path)
    return dead


def unreferenced_arrays(folder: Path) -> list[Path]:
    """Array files that no frame names: written by a worker killed before its frame."""
    found = []
    for arrays in folder.rglob("arrays"):
        named = {f.value.decode() for f in frames(arrays.parent) if f.kind == ARRAY_FILE}
        found += [p for p in arrays.iterdir() if not p.name.startswith(".") and p.name not in named]
    return found
