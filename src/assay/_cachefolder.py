"""A step cache folder: which folder it is, and what its step and code-version folders hold.

A step cache is the ``cache/`` folder of an experiment folder (marked ``.assay-experiment``)
or a folder that assay-steps created (marked ``.assay-cache``); any other folder is refused.
The commands ``assay cache info``, ``compact`` and ``migrate`` work on every entries folder of
one (see ``_prune`` for ``assay cache prune``).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable
from pathlib import Path

# The upkeep of entries folders lives with the store it knows (assay-steps); the rest of
# assay reaches it through this module only.
from assay_steps import CompactReport as CompactReport
from assay_steps import FolderInfo as FolderInfo
from assay_steps import MigrateReport as MigrateReport
from assay_steps import compact as compact
from assay_steps import count_entries as count_entries
from assay_steps import entries_folders as entries_folders
from assay_steps import folder_info as folder_info
from assay_steps import in_use, migrate
from assay_steps import packed_entries as packed_entries

from ._folderpath import check_folder
from ._marker import MARKER_NAME, ForeignFolderError, claim_folder
from ._marker import is_marked as is_experiment_folder
from ._schema import INDEX_NAME

#: Marker file that assay-steps writes in a step cache folder when it creates it.
CACHE_MARKER = ".assay-cache"

_STEP_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*-[0-9a-f]{32}")
_ENTRY_SUFFIXES = (".pkl", ".npy")


# ---------------------------------------------------------------- whole caches


def describe_cache(cache: Path) -> list[FolderInfo]:
    """Return what each entries folder of a step cache holds (``assay cache info``)."""
    return [folder_info(folder) for folder in entries_folders(cache)]


def compact_cache(cache: Path) -> list[CompactReport]:
    """Compact every entries folder of a step cache (``assay cache compact``)."""
    return [compact(folder) for folder in entries_folders(cache)]


def migrate_cache(cache: Path) -> list[MigrateReport]:
    """Pack the older layout's entries of every entries folder (``assay cache migrate``)."""
    return [migrate(folder) for folder in entries_folders(cache)]


# ---------------------------------------------------------------- the folder


def locate_cache(root: Path, action: str = "prunes") -> tuple[Path, Path | None]:
    """Return the step cache folder of ``root`` and the experiment folder whose index counts.

    ``root`` is an experiment folder (its step cache is ``cache/``) or a step cache folder
    that assay created (its ``.assay-cache`` marker). ``action`` completes the refusal's
    last words: "assay <action> only folders it created".

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` is a file.
        ForeignFolderError: assay did not create ``root``.

    """
    check_folder(root, "folder", "an experiment folder, or a step cache folder")  # a file
    if not root.is_dir():
        raise FileNotFoundError(
            f"folder {str(root)!r} does not exist; expected an experiment folder"
        )
    if is_experiment_folder(root) or (root / INDEX_NAME).exists():
        claim_folder(root, create=False)  # another tool's index.sqlite: ForeignFolderError
        return root / "cache", root
    marker = root / CACHE_MARKER
    if marker.is_file() and not marker.is_symlink():
        if root.name == "cache" and is_experiment_folder(root.parent):
            return root, root.parent  # the step cache of an experiment: its index still counts
        return root, None
    raise ForeignFolderError(
        f"folder {str(root)!r} was not created by assay: it has neither the {MARKER_NAME} "
        f"marker of an experiment folder nor the {CACHE_MARKER} marker of a step cache "
        f"folder; assay {action} only folders it created"
    )


# ---------------------------------------------------------------- the step cache


def _step_folders(cache: Path) -> list[Path]:
    if not cache.is_dir():
        return []
    return [
        path
        for path in sorted(cache.iterdir())
        if _STEP_FOLDER.fullmatch(path.name) and path.is_dir() and not path.is_symlink()
    ]


def _versions(step: Path) -> list[Path]:
    return [path for path in sorted(step.glob("code-*")) if path.is_dir() and not path.is_symlink()]


def _stale_versions(step: Path) -> list[Path]:
    """Return the code-version folders of ``step`` that its current code does not use.

    Used are the current version (the latest created), the version it keeps (whose entries its
    code serves) and, should that one keep another, that one too. A version whose ``code.json``
    cannot be read (being written, damaged) is never stale, nor one in use (a live claim, a
    segment being written, a lock of the older layout refreshed in the last two minutes).
    """
    known: dict[Path, tuple[datetime.datetime, str | None]] = {}
    for version in _versions(step):
        code = _read_code(version / "code.json")
        if code is not None:
            known[version] = code
    if len(known) < 2:
        return []
    current = max(known, key=lambda v: (known[v][0], v.name))
    used = {current.name}
    keeps = known[current][1]
    while keeps is not None and f"code-{keeps}" not in used:  # what it keeps, and so on
        used.add(f"code-{keeps}")
        kept = step / f"code-{keeps}"
        keeps = known[kept][1] if kept in known else None
    return [v for v in known if v.name not in used and not in_use(v)]


def _read_code(path: Path) -> tuple[datetime.datetime, str | None] | None:
    """Return ``(created, keeps)`` of a ``code.json``, or None when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        created = datetime.datetime.fromisoformat(str(data["created"]).replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.timezone.utc)
    keeps = data.get("keeps")
    return created, keeps if isinstance(keeps, str) else None


def _legacy_files(folder: Path) -> list[Path]:
    """Return the entry files of the older layout in ``folder/cache``."""
    entries = folder / "cache"
    if not entries.is_dir() or entries.is_symlink():
        return []
    return [
        path
        for path in sorted(entries.iterdir())
        if path.suffix in _ENTRY_SUFFIXES and not path.name.startswith(".") and path.is_file()
    ]


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]


def _size(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += path.lstat().st_size
        except FileNotFoundError:  # removed meanwhile
            continue
    return total
