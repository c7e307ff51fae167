"""Listing and inspecting entries folders: what they hold.

These functions serve ``assay cache info``, ``compact``, ``migrate`` and ``prune``. Each works on
one *entries folder* (a code version folder ``<Step>-<uid>/code-<version>/``, or a step folder
without code versions); [`entries_folders`][assay_steps.entries_folders] lists those of a cache
folder. Whether a process writes there now is ``_liveness.py``'s to say; the scan of their
segments is ``_survey.py``'s.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ._catalog import catalog_for
from ._frames import ERROR
from ._legacy import LEGACY_FOLDER, legacy_uids
from ._liveness import _live_claims
from ._locations import kind_of
from ._segments import SEGMENTS
from ._survey import ENTRY_KINDS, _survey

ARRAYS = "arrays"

_STEP_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*-[0-9a-f]{32}")
_BLOCK = 4 * 2**20


# ---------------------------------------------------------------- folders


def entries_folders(cache_folder: str | Path) -> list[Path]:
    """Return the entries folders of a cache folder: its steps' code version folders.

    A step folder (``<StepName>-<32 hex>/``) counts itself when it has no ``code-*/`` folder
    or when it holds entries of its own (``segments/``, ``arrays/`` or ``cache/``).

    Examples:
        >>> base = Path("cache-base")
        >>> (base / ("Mult-" + "0" * 32) / "code-v1").mkdir(parents=True)
        >>> print(*(p.relative_to(base).as_posix() for p in entries_folders(base)))
        Mult-00000000000000000000000000000000/code-v1

    """
    base = Path(cache_folder)
    if not base.is_dir():
        return []
    found: list[Path] = []
    for step in sorted(base.iterdir()):
        if not _STEP_FOLDER.fullmatch(step.name) or not _plain_dir(step):
            continue
        versions = [v for v in sorted(step.glob("code-*")) if _plain_dir(v)]
        own = any(_plain_dir(step / name) for name in (SEGMENTS, ARRAYS, LEGACY_FOLDER))
        if own or not versions:
            found.append(step)
        found += versions
    return found


def _plain_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


# ---------------------------------------------------------------- info


@dataclass(frozen=True)
class FolderInfo:
    """What an entries folder holds (see [`folder_info`][assay_steps.folder_info]).

    Attributes:
        folder: the entries folder (absolute).
        entries: entries served from segments: results, cached errors and arrays.
        errors: those of them that are cached errors.
        segments: segment files; ``segment_bytes`` their size.
        live_segments: segments whose writer may still append (compaction leaves them).
        arrays: large array files under ``arrays/``; ``array_bytes`` their size.
        dead_frames: frames that serve nothing: superseded by a newer frame, or cleared.
        dead_bytes: the bytes of segments that serve nothing (dead frames, seals, torn tails).
        reclaimable_bytes: those of ``dead_bytes`` in finished segments (a compaction frees).
        legacy: entries of the older layout still in ``cache/`` (``assay cache migrate``).
        claims: live claims (chunks of items being computed now).

    """

    folder: str
    entries: int
    errors: int
    segments: int
    segment_bytes: int
    live_segments: int
    arrays: int
    array_bytes: int
    dead_frames: int
    dead_bytes: int
    reclaimable_bytes: int
    legacy: int
    claims: int


def folder_info(entries_folder: str | Path) -> FolderInfo:
    """Describe an entries folder: entries, segments, arrays, dead frames, older entries.

    Entries are counted from this process's catalog after a refresh; nothing is changed in
    the folder (but for the saved catalog a large scan writes, as any reader's does).

    Examples:
        >>> info = folder_info("empty-entries")
        >>> info.entries, info.segments, info.legacy
        (0, 0, 0)

    """
    folder = os.path.abspath(entries_folder)
    catalog = catalog_for(folder)
    catalog.refresh()
    kinds = [kind_of(location) for location in catalog.entries.values()]
    survey = _survey(folder)
    arrays = _array_files(folder)
    live_items = sum(1 for item in survey.items.values() if item.kind in ENTRY_KINDS)
    return FolderInfo(
        folder=folder,
        entries=sum(1 for kind in kinds if kind in ENTRY_KINDS),
        errors=kinds.count(ERROR),
        segments=len(survey.segments),
        segment_bytes=sum(s.size for s in survey.segments),
        live_segments=sum(1 for s in survey.segments if s.live),
        arrays=len(arrays),
        array_bytes=sum(size for size, _ in arrays.values()),
        dead_frames=sum(survey.frames) - live_items,
        dead_bytes=survey.dead_bytes(finished_only=False),
        reclaimable_bytes=survey.dead_bytes(finished_only=True),
        legacy=len(legacy_uids(os.path.join(folder, LEGACY_FOLDER))),
        claims=_live_claims(folder),
    )


def _array_files(folder: str) -> dict[str, tuple[int, float]]:
    """Return ``name -> (size, mtime)`` of the array files of ``folder`` (not temporary ones)."""
    found = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(os.path.join(folder, ARRAYS)) as it:
        for entry in it:
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                found[entry.name] = (info.st_size, info.st_mtime)
    return found


@dataclass(frozen=True)
class PackedEntry:
    """One entry served from the segments of a folder.

    See [`packed_entries`][assay_steps.packed_entries].

    Attributes:
        uid: the item uid.
        kind: the kind of its newest frame (``RESULT``, ``ERROR``, ``ARRAY``, ``ARRAY_FILE``).
        stamp: when it was written, in nanoseconds since the epoch.
        bytes: its frame's size, and its array file's for a large array.
        busy: its frame lies in a segment whose writer is alive (a compaction keeps it).

    """

    uid: str
    kind: int
    stamp: int
    bytes: int
    busy: bool


def packed_entries(entries_folder: str | Path) -> list[PackedEntry]:
    """Return the entries served from the segments of ``entries_folder``, oldest first.

    Examples:
        >>> packed_entries("empty-entries")
        []

    """
    folder = os.path.abspath(entries_folder)
    survey = _survey(folder)
    arrays = _array_files(folder)
    found = []
    for uid, item in survey.items.items():
        if item.kind not in ENTRY_KINDS:
            continue
        size = item.length
        name = survey.array_refs.get((item.segment, item.offset))
        if name is not None:
            size += arrays.get(name, (0, 0.0))[0]
        busy = survey.segments[item.segment].live
        found.append(PackedEntry(uid, item.kind, item.stamp, size, busy))
    return sorted(found, key=lambda entry: (entry.stamp, entry.uid))


def count_entries(entries_folder: str | Path) -> int:
    """Return how many items have an entry: packed ones, and older ones no frame shadows.

    Examples:
        >>> count_entries("empty-entries")
        0

    """
    folder = os.path.abspath(entries_folder)
    catalog = catalog_for(folder)
    catalog.refresh()
    packed = sum(1 for loc in catalog.entries.values() if kind_of(loc) in ENTRY_KINDS)
    legacy = legacy_uids(os.path.join(folder, LEGACY_FOLDER))
    return packed + sum(1 for uid in legacy if uid not in catalog.entries)
