"""Where a step keeps its files, and the validation of names that become paths."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import xxhash

# Names that become file names: no separators, no "..", no leading dot, bounded length.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}")


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is safe as a single file name, else raise ``ValueError``.

    Examples:
        >>> check_name("item-1", "item uid")
        'item-1'

    """
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"{what}={name!r} is not a safe file name: expected 1-200 characters from "
            "[A-Za-z0-9_.=+-], not starting with '.', without '..' or path separators"
        )
    return name


_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_.=+-]")
_DOTS = re.compile(r"\.{2,}")
#: Characters kept from each end of a shortened item uid (with the digest, under 200).
_KEPT_END = 70


def safe_item_uid(uid: str, what: str) -> str:
    """Return ``uid`` if it is a safe file name, else a safe name derived from it.

    A custom item uid too long for a file name, or holding characters that are unsafe in one
    (separators, ``..``, a leading dot), becomes its safe characters (each unsafe one made
    ``_``), shortened to its two ends when long, followed by the xxh3-128 digest of the
    whole uid: deterministic, readable, and distinct for distinct uids. A uid that is safe as
    it is stays as it is.

    Raises:
        TypeError: ``uid`` is not a string (nothing to derive a name from).

    Examples:
        >>> safe_item_uid("sub-01", "item uid")
        'sub-01'
        >>> safe_item_uid("/data/sub-01.wav", "item uid")[:17]
        '_data_sub-01.wav-'

    """
    if not isinstance(uid, str):
        raise TypeError(f"{what} returned {uid!r}, a {type(uid).__name__}; expected a str or None")
    if _SAFE_NAME.fullmatch(uid) and ".." not in uid:
        return uid
    readable = _DOTS.sub(lambda dots: "_" * len(dots.group()), _UNSAFE_CHAR.sub("_", uid))
    if len(readable) > 2 * _KEPT_END:
        readable = f"{readable[:_KEPT_END]}-{readable[-_KEPT_END:]}"
    if not readable[:1].isalnum() and readable[:1] != "_":
        readable = "_" + readable  # a name starting with a dot or a dash is hidden or an option
    digest = xxhash.xxh3_128_hexdigest(uid.encode("utf-8", "surrogatepass"))
    return check_name(f"{readable}-{digest}", what)


#: The record of one code version of a step folder (``code-<version>/code.json``).
CODE_FILE = "code.json"

#: Marker file written in a cache folder when assay creates it: tools that delete refuse any
#: folder without it.
CACHE_MARKER = ".assay-cache"


def mark_cache_folder(folder: Path, encoding: int) -> None:
    """Write the marker of a cache folder made by assay, unless it is there already."""
    marker = folder / CACHE_MARKER
    if marker.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": "assay-cache", "encoding": encoding})
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return  # another process marked it meanwhile
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclasses.dataclass(frozen=True)
class StepPaths:
    """On-disk layout of one step configuration under its backend folder.

    ``base_folder/step_uid/`` holds ``config.json`` (the configuration, human readable) and
    one folder per version of the code that wrote entries, ``code-<version>/``, holding
    ``code.json`` (what that code was), ``segments/`` (the entries, packed: one file per
    writing process), ``arrays/`` (large array results, one ``.npy`` each), ``index`` (the
    saved catalog of the segments), ``claims/`` (chunks of items being computed), ``jobs/``
    (job references written by backends) and ``logs/`` (free for backends). Without a
    ``code`` version, those sit in the step folder. See ``docs/guide/cache.md``.

    Examples:
        >>> StepPaths(Path("cache"), "Mult-0123", "9f3a").segments_folder.as_posix()
        'cache/Mult-0123/code-9f3a/segments'

    """

    base_folder: Path
    step_uid: str
    code: str = ""

    @property
    def step_folder(self) -> Path:
        """Folder of this step configuration (config and code versions)."""
        return self.base_folder / self.step_uid

    @property
    def entries_folder(self) -> Path:
        """Folder of the code version whose entries this step reads and writes."""
        if not self.code:
            return self.step_folder
        return self.step_folder / f"code-{self.code}"

    @property
    def segments_folder(self) -> Path:
        """Folder of the segment files holding the entries."""
        return self.entries_folder / "segments"

    @property
    def arrays_folder(self) -> Path:
        """Folder of the large array results (one ``.npy`` file each)."""
        return self.entries_folder / "arrays"

    @property
    def claims_folder(self) -> Path:
        """Folder of the claims on chunks of items being computed."""
        return self.entries_folder / "claims"

    @property
    def cache_folder(self) -> Path:
        """Folder of the older layout's entries (``<uid>.pkl``, ``<uid>.npy``), read only."""
        return self.entries_folder / "cache"

    @property
    def job_folder(self) -> Path:
        """Folder of the job references that backends attach to items."""
        return self.entries_folder / "jobs"

    @property
    def logs_folder(self) -> Path:
        """Folder where backends may keep logs."""
        return self.entries_folder / "logs"

    def code_versions(self) -> list[dict[str, Any]]:
        """Return the ``code.json`` of every code version of this step folder, oldest first.

        Each holds at least its ``"version"`` (taken from its folder's name when the file is
        damaged, since the version still exists); see ``docs/guide/cache.md`` for the fields.

        Examples:
            >>> StepPaths(Path("nowhere"), "Mult-0123").code_versions()
            []

        """
        found = []
        for path in self.step_folder.glob(f"code-*/{CODE_FILE}"):
            data = read_record(path) or {}
            data.setdefault("version", path.parent.name.removeprefix("code-"))
            found.append(data)
        return sorted(found, key=_created)


def read_record(path: Path) -> dict[str, Any] | None:
    """Return the JSON object of a small record file (``config.json``, ``code.json``).

    None when the file is missing; ``{}`` when it is damaged (it still says it exists).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _created(data: dict[str, Any]) -> str:
    created = data.get("created")
    return created if isinstance(created, str) else ""
