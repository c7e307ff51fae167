"""Layout of an experiment folder, and the ``assay cache info|clear`` operations on it.

::

    <folder>/
        index.sqlite        the results index (written by the driver only)
        cache/              the step cache: one entry per run, written atomically by workers
        runs/<run_id>/      each run's own directory (artifacts, outputs)
        plots/              PNGs written by Results.plot()
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ._index import INDEX_NAME, ResultsIndex

CACHE = "cache"
RUNS = "runs"


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def _index_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob(INDEX_NAME + "*") if p.is_file()]


def cache_info(folder: str | Path) -> dict[str, Any]:
    """Describe an experiment folder: runs by status, cache files and sizes.

    Raises:
        FileNotFoundError: the folder is not an experiment folder.

    """
    root = Path(folder)
    with ResultsIndex(root, create=False) as index:
        counts = index.status_counts()
        info = index.get_meta("experiment", {})
    cache = _files(root / CACHE)
    return {
        "folder": str(root),
        "operation": info.get("operation"),
        "runs": sum(counts.values()),
        "by status": ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none",
        "cache files": len(cache),
        "cache bytes": sum(p.stat().st_size for p in cache),
        "index bytes": sum(p.stat().st_size for p in _index_files(root)),
    }


def cache_clear(folder: str | Path) -> int:
    """Remove the cache, run directories and results index of an experiment folder.

    Other files in the folder (plots, anything the user put there) are kept.

    Returns:
        The number of files removed.

    Raises:
        FileNotFoundError: the folder is not an experiment folder (nothing is removed).

    """
    root = Path(folder)
    ResultsIndex(root, create=False).close()  # refuse to clear a folder that is not ours
    removed = 0
    for sub in (CACHE, RUNS):
        removed += len(_files(root / sub))
        shutil.rmtree(root / sub, ignore_errors=True)
    for path in _index_files(root):
        path.unlink()
        removed += 1
    return removed
