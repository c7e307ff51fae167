"""Pruning a step cache: plan what would go (``assay cache prune``), then delete it.

A plan is computed first and deleting is a separate step, so that the command can show the
plan (a dry run) and delete only when asked. The folder is an experiment folder (marked
``.assay-experiment``; its step cache is ``cache/``) or a step cache folder (marked
``.assay-cache``); any other folder is refused. The step cache holds::

    <StepName>-<32 hex>/config.json
    <StepName>-<32 hex>/code-<version>/code.json       one folder per code version
    <StepName>-<32 hex>/code-<version>/segments/       its entries, packed in segment files
    <StepName>-<32 hex>/code-<version>/arrays/         large array results, one file each
    <StepName>-<32 hex>/code-<version>/cache/          entries of the older layout, one file each
    <StepName>-<32 hex>/segments/ ...                  entries of a step without code versions

A packed entry's age is its frame's stamp (when it was written) and its size the frame's (and
its array file's). Packed entries go by compacting their folder without them (see
``compact`` in assay-steps): the new segment, holding every other entry, is in place before
the old ones are deleted, so an interrupted prune loses nothing it was not asked to delete.
An entry of the older layout goes with one ``unlink``. A whole code-version folder is first
renamed aside to ``.trash-*`` in its step folder, so no reader sees a version half removed,
then removed (a prune interrupted there leaves the ``.trash-*`` folder, which the next prune
removes).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ._cachefolder import (
    _files,
    _legacy_files,
    _size,
    _stale_versions,
    _step_folders,
    compact,
    entries_folders,
    folder_info,
    locate_cache,
    packed_entries,
)
from ._index import ResultsIndex
from ._schema import INDEX_NAME
from ._units import format_duration, format_size, parse_duration, parse_size

#: Statuses of runs that the index holds results of: their cache entries are kept by default
#: (a run stopped early by its pruner is a result too: a rerun must not compute it again).
FINAL = ("success", "failed", "pruned")

#: Prefix of the name a code-version folder is renamed to before it is removed.
TRASH = ".trash-"


@dataclass(frozen=True)
class PruneEntry:
    """One thing a prune deletes.

    Attributes:
        path: for a packed entry, ``<entries folder>/<uid>`` (it names the entry; the entry
            lies in a segment of that folder); for an entry of the older layout, its file;
            else the folder of a whole code version (or a ``.trash-*`` folder).
        bytes: its size (for a folder, the size of every file in it).
        reason: why it goes (``"older than 30d"``, ``"cache over 2.0 GiB"``, ``"stale code"``).
        modified: when it was written (for a folder, its newest file's modification time), in
            seconds since the epoch.
        kind: ``"entry"`` (packed in a segment), ``"file"`` (an entry of the older layout),
            ``"version"`` (a code-version folder) or ``"trash"`` (left by an interrupted prune).

    """

    path: Path
    bytes: int
    reason: str
    modified: float
    kind: Literal["entry", "file", "version", "trash"] = "entry"
    # When planned: (stamp, size) of a packed entry, (mtime in ns, size) of a file. An entry
    # written again since then is not deleted.
    signature: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)

    @property
    def uid(self) -> str:
        """The item uid of an entry (packed or a file); a folder's name otherwise."""
        return self.path.stem if self.kind == "file" else self.path.name


@dataclass
class PrunePlan:
    """What a prune of ``folder`` deletes; nothing is deleted until ``apply``.

    Attributes:
        folder: the folder given (an experiment folder or a step cache folder).
        cache: its step cache folder.
        entries: what goes.
        kept: entries that a criterion chose but the experiment index references (results of
            finished runs); they stay unless ``include_indexed``.
        cache_bytes: the size of every file in the step cache folder now.
        busy: entries left alone because they lie in a segment still being written (a run
            is going on): a compaction cannot drop them yet.
        compact: entries folders compacted to meet ``max_size`` even where no entry goes,
            freeing ``reclaim_bytes`` of superseded or cleared entries in all.

    """

    folder: Path
    cache: Path
    entries: list[PruneEntry]
    kept: list[Path]
    cache_bytes: int
    busy: int = 0
    compact: list[Path] = field(default_factory=list)
    reclaim_bytes: int = 0

    @property
    def bytes(self) -> int:
        """The number of bytes the planned entries take."""
        return sum(entry.bytes for entry in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def apply(self) -> list[PruneEntry]:
        """Delete the planned entries; return those deleted.

        An entry that was written again (or removed) since the plan was made is left alone.
        Packed entries go by compacting their folder without them, folder by folder, after
        the rest. A code-version folder is renamed aside to a ``.trash-*`` name in its step
        folder before it is removed, so no reader sees it half removed.
        """
        deleted = []
        packed: dict[Path, dict[str, PruneEntry]] = {folder: {} for folder in self.compact}
        for entry in self.entries:
            if entry.kind == "entry":
                packed.setdefault(entry.path.parent, {})[entry.uid] = entry
            elif _delete(entry):
                deleted.append(entry)
        for folder, chosen in packed.items():
            deleted += _compact_without(folder, chosen)
        return deleted


def _delete(entry: PruneEntry) -> bool:
    """Delete an entry file or a folder; return False when it changed or went meanwhile."""
    if entry.kind == "file":
        try:
            stat = os.lstat(entry.path)
            if (stat.st_mtime_ns, stat.st_size) != entry.signature:
                return False  # written again since the plan: not what was listed
            os.unlink(entry.path)
        except FileNotFoundError:
            return False
        return True
    aside = entry.path
    if entry.kind == "version":
        aside = entry.path.with_name(f"{TRASH}{entry.path.name}-{os.urandom(4).hex()}")
        try:
            os.rename(entry.path, aside)
        except FileNotFoundError:
            return False
    shutil.rmtree(aside)
    return True


def _compact_without(folder: Path, chosen: dict[str, PruneEntry]) -> list[PruneEntry]:
    """Compact ``folder`` dropping the chosen entries that were not written again."""

    def planned(uid: str, kind: int, stamp: int) -> bool:
        entry = chosen.get(uid)
        return entry is not None and entry.signature[0] == stamp

    if not folder.is_dir():
        return []
    dropped = set(compact(folder, drop=planned).dropped)
    return [entry for uid, entry in chosen.items() if uid in dropped]


def plan_prune(
    folder: str | Path,
    *,
    older_than: float | str | None = None,
    max_size: int | str | None = None,
    stale_code: bool = False,
    include_indexed: bool = False,
) -> PrunePlan:
    """Plan which entries of a step cache to delete; ``PrunePlan.apply`` deletes them.

    Args:
        folder: an experiment folder, or a step cache folder (a step's ``infra.folder``).
        older_than: entries written longer ago than this go (seconds, or a duration such as
            ``"30d"``, ``"12h"``, ``"90m"``, ``"2w"``).
        max_size: the oldest entries go until the step cache holds at most this (bytes, or a
            size such as ``"500M"``, ``"2G"``, ``"10k"``; powers of 1024). Superseded and
            cleared entries, which a compaction frees anyway, count as gone.
        stale_code: the folders of code versions that are stale go: every version of a step
            but its current one (the latest created) and the one the current one keeps.
        include_indexed: entries of runs that the experiment index holds as finished (success
            or failed) go too; by default they are kept.

    Raises:
        ValueError: no criterion given, or a bad value (naming the argument).
        FileNotFoundError: the folder does not exist, or an experiment folder lost its index
            (it cannot tell which entries hold results) and ``include_indexed`` is False.
        ForeignFolderError: assay did not create the folder.

    """
    seconds = _check_duration(older_than)
    limit = _check_size(max_size)
    if seconds is None and limit is None and not stale_code:
        raise ValueError("plan_prune() needs a criterion: older_than, max_size or stale_code=True")
    root = Path(folder)
    cache, experiment = locate_cache(root)
    indexed = set() if include_indexed or experiment is None else _indexed_runs(experiment)
    plan = PrunePlan(root, cache, [], [], _size(_files(cache)))
    gone = _plan_folders(plan, stale_code, indexed)
    folders = [f for f in entries_folders(cache) if f not in gone]
    left = sorted((e for f in folders for e in _entries_of(f, plan)), key=_age_order)
    if seconds is not None:
        left = _choose_old(plan, left, seconds, indexed)
    if limit is not None:
        _choose_oldest(plan, left, limit, indexed, folders)
    plan.kept.sort()
    return plan


def _plan_folders(plan: PrunePlan, stale_code: bool, indexed: set[str]) -> set[Path]:
    """Plan the ``.trash-*`` folders and, with ``stale_code``, the stale versions' entries.

    Returns the code-version folders that the plan takes care of.
    """
    gone: set[Path] = set()
    for step in _step_folders(plan.cache):
        for trash in sorted(step.glob(TRASH + "*")):
            if trash.is_dir() and not trash.is_symlink():
                plan.entries.append(_folder_entry(trash, "left by an interrupted prune", "trash"))
        if not stale_code:
            continue
        for version in _stale_versions(step):
            gone.add(version)
            items = _entries_of(version, plan)
            protected = [entry.path for entry in items if entry.uid in indexed]
            if not protected:
                plan.entries.append(_folder_entry(version, "stale code", "version"))
                continue
            plan.kept += protected  # the version stays, with the entries the index references
            plan.entries += [
                dataclasses.replace(entry, reason="stale code")
                for entry in items
                if entry.uid not in indexed
            ]
    return gone


def _choose_old(
    plan: PrunePlan, left: list[PruneEntry], seconds: float, indexed: set[str]
) -> list[PruneEntry]:
    """Plan the entries older than ``seconds``; return those that stay."""
    cutoff = time.time() - seconds
    reason = f"older than {format_duration(seconds)}"
    young = []
    for entry in left:
        if entry.modified >= cutoff:
            young.append(entry)
        elif entry.uid in indexed:
            plan.kept.append(entry.path)
            young.append(entry)
        else:
            plan.entries.append(dataclasses.replace(entry, reason=reason))
    return young


def _choose_oldest(
    plan: PrunePlan, left: list[PruneEntry], limit: int, indexed: set[str], folders: list[Path]
) -> None:
    """Plan the oldest entries until the cache holds at most ``limit`` bytes."""
    reclaim = {folder: folder_info(folder).reclaimable_bytes for folder in folders}
    plan.compact = [folder for folder, size in reclaim.items() if size]
    plan.reclaim_bytes = sum(reclaim.values())
    size = plan.cache_bytes - plan.bytes - plan.reclaim_bytes
    reason = f"cache over {format_size(limit)}"
    for entry in left:
        if size <= limit:
            break
        if entry.uid in indexed:
            plan.kept.append(entry.path)
            continue
        plan.entries.append(dataclasses.replace(entry, reason=reason))
        size -= entry.bytes


def _check_duration(value: float | str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value) if isinstance(value, str) else value
    except ValueError as error:
        raise ValueError(f"older_than: {error}") from None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ValueError(
            f"older_than = {value!r}; expected seconds >= 0 or a duration like 30d, 12h or 2w"
        )
    return float(seconds)


def _check_size(value: int | str | None) -> int | None:
    if value is None:
        return None
    try:
        size = parse_size(value) if isinstance(value, str) else value
    except ValueError as error:
        raise ValueError(f"max_size: {error}") from None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(
            f"max_size = {value!r}; expected a number of bytes >= 0 or a size like 500M or 2G"
        )
    return size


def _indexed_runs(experiment: Path) -> set[str]:
    if not (experiment / INDEX_NAME).is_file():
        raise FileNotFoundError(
            f"folder {str(experiment)!r} has no results index ({INDEX_NAME}), so which cache "
            "entries hold results is unknown; run the experiment again (it rebuilds the index "
            "from the cache), or pass include_indexed=True (--include-indexed)"
        )
    with ResultsIndex(experiment, read_only=True) as index:
        return {run_id for run_id, status in index.statuses().items() if status in FINAL}


def _entries_of(folder: Path, plan: PrunePlan) -> list[PruneEntry]:
    """Return the entries of an entries folder: packed ones, then files of the older layout.

    Packed entries in a segment still being written are left out (counted in ``plan.busy``).
    """
    found = []
    for packed in packed_entries(folder):
        if packed.busy:
            plan.busy += 1
            continue
        signature = (packed.stamp, packed.bytes)
        modified = packed.stamp / 1e9
        found.append(
            PruneEntry(folder / packed.uid, packed.bytes, "", modified, "entry", signature)
        )
    return found + _file_entries(_legacy_files(folder))


def _file_entries(paths: Iterable[Path]) -> list[PruneEntry]:
    entries = []
    for path in paths:
        try:
            stat = path.lstat()
        except FileNotFoundError:  # removed meanwhile
            continue
        signature = (stat.st_mtime_ns, stat.st_size)
        entries.append(PruneEntry(path, stat.st_size, "", stat.st_mtime, "file", signature))
    return entries


def _folder_entry(folder: Path, reason: str, kind: Literal["version", "trash"]) -> PruneEntry:
    files = _files(folder)
    modified = folder.lstat().st_mtime
    for path in files:
        try:
            modified = max(modified, path.lstat().st_mtime)
        except FileNotFoundError:
            continue
    return PruneEntry(folder, _size(files), reason, modified, kind)


def _age_order(entry: PruneEntry) -> tuple[float, str]:
    return entry.modified, str(entry.path)
