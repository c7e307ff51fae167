"""Helpers to look at the packed cache store from outside: frames, segments, damage.

Frames are found with the frame module's own parser (``parse_header``, ``frame_length``,
``verify``), so that these helpers follow its layout; the tests then damage, copy or cut
the bytes of the files themselves.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from assay_steps import LookupHandle, Step, _catalog, _frames

TESTS = Path(__file__).parent

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Frame:
    """One whole, verified frame found in a segment file."""

    segment: Path
    offset: int
    kind: int
    uid: str
    stamp: int
    length: int
    value_offset: int
    value_len: int

    def value(self) -> bytes:
        data = self.segment.read_bytes()
        return data[self.value_offset : self.value_offset + self.value_len]

    def raw(self) -> bytes:
        return self.segment.read_bytes()[self.offset : self.offset + self.length]


def frames_in(segment: Path) -> list[Frame]:
    """Return the whole, valid frames of a segment, in order, up to the first invalid byte."""
    data = segment.read_bytes()
    found: list[Frame] = []
    offset = 0
    while True:
        header = _frames.parse_header(data, offset, len(data))
        if header is None:
            break
        kind, uid_len, stamp, value_len = header
        start = offset + _frames.HEADER.size
        uid = data[start : start + uid_len]
        try:
            _frames.verify(data, offset, uid, str(segment))
        except _frames.CorruptEntryError:
            break
        length = _frames.frame_length(header)
        value_offset = start + uid_len
        found.append(
            Frame(segment, offset, kind, uid.decode(), stamp, length, value_offset, value_len)
        )
        offset += length
    return found


def entries_folder(handle: LookupHandle) -> Path:
    return handle.paths.entries_folder


def segments(folder: Path) -> list[Path]:
    """Return the segment files of an entries folder, oldest first."""
    return sorted((folder / "segments").glob("*.seg"))


def all_frames(folder: Path) -> list[Frame]:
    return [frame for segment in segments(folder) for frame in frames_in(segment)]


def frame_of(handle: LookupHandle) -> Frame:
    """Return the newest frame of the handle's item (highest stamp)."""
    frames = all_frames(entries_folder(handle))
    mine = [f for f in frames if f.uid == handle.uid and f.kind != _frames.SEAL]
    assert mine, f"no frame of {handle.uid} in {entries_folder(handle)}"
    return max(mine, key=lambda f: f.stamp)


def array_file_of(handle: LookupHandle) -> Path:
    """Return the ``.npy`` file of the handle's item (a large array, stored on its own)."""
    frame = frame_of(handle)
    assert frame.kind == _frames.ARRAY_FILE, f"item {handle.uid} is not in an array file"
    return entries_folder(handle) / "arrays" / frame.value().decode()


def as_a_new_process() -> None:
    """Drop this process's catalogs: the next store reads the folder as a new process would."""
    _catalog._catalogs.clear()


def patch_bytes(path: Path, offset: int, new: bytes) -> None:
    """Overwrite bytes of ``path`` in place (the file keeps its inode and length)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, new, offset)
    finally:
        os.close(fd)


def flip(path: Path, offset: int, mask: int = 0xFF) -> None:
    """Flip bits of the byte at ``offset`` (negative: from the end) in place."""
    data = path.read_bytes()
    position = offset % len(data)
    patch_bytes(path, position, bytes([data[position] ^ mask]))


def cut(path: Path, size: int) -> None:
    """Truncate ``path`` to ``size`` bytes in place."""
    os.truncate(path, size)


def within(seconds: float, work: Callable[[], T]) -> T:
    """Run ``work`` in a daemon thread; fail if it has not returned after ``seconds``.

    Used where a bug would block forever (a FIFO opened for reading): the test then fails
    instead of hanging the suite.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def python(code: str, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new Python process (the tests folder importable); fail on an error."""
    command = [sys.executable, "-c", code, str(TESTS), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return done


def frame(uid: str, value: bytes, stamp: int = 1, kind: int = _frames.RESULT) -> bytes:
    """The bytes of one frame, as the segment writer frames an entry."""
    return b"".join(_frames.encode(kind, uid.encode(), stamp, value))


def step_uids(step: Step, value: Any) -> list[str]:
    """The step uids of a step's cache folders for ``value``: its sub-steps' first."""
    handle = step.lookup(value)
    subs = [sub.paths.step_uid for sub in handle._sub_handles if sub._store is not None]
    return [*subs, handle.paths.step_uid]


def dead_pid() -> int:
    """The pid of a process that has ended (the owner of a claim left behind)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
