"""Where a step keeps its files, and the validation of names that become paths."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

# Names that become file names: no separators, no "..", no leading dot, bounded length.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}")


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is safe as a single file name, else raise ``ValueError``.

    Example:
        >>> check_name("item-1", "item uid")
        'item-1'

    """
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"{what}={name!r} is not a safe file name: expected 1-200 characters from "
            "[A-Za-z0-9_.=+-], not starting with '.', without '..' or path separators"
        )
    return name


@dataclasses.dataclass(frozen=True)
class StepPaths:
    """On-disk layout of one step configuration under its backend folder.

    ``base_folder/step_uid/`` holds ``config.json`` (the configuration, human readable),
    ``cache/`` (one entry file per item), ``locks/`` (items being computed), ``jobs/``
    (job references written by backends) and ``logs/`` (free for backends).

    Example:
        >>> StepPaths(Path("cache"), "Mult-0123").cache_folder.as_posix()
        'cache/Mult-0123/cache'

    """

    base_folder: Path
    step_uid: str

    @property
    def step_folder(self) -> Path:
        """Folder of this step configuration (config, cache, locks, jobs, logs)."""
        return self.base_folder / self.step_uid

    @property
    def cache_folder(self) -> Path:
        """Folder of the entries: ``<uid>.pkl`` (results, errors), ``<uid>.npy`` (arrays)."""
        return self.step_folder / "cache"

    @property
    def lock_folder(self) -> Path:
        """Folder of the lock files of items being computed."""
        return self.step_folder / "locks"

    @property
    def job_folder(self) -> Path:
        """Folder of the job references that backends attach to items."""
        return self.step_folder / "jobs"

    @property
    def logs_folder(self) -> Path:
        """Folder where backends may keep logs."""
        return self.step_folder / "logs"
