"""Layout of an experiment folder, and the ``assay cache info|clear`` operations on it.

::

    <folder>/
        .assay-experiment   the marker written when assay creates the folder
        index.sqlite        the results index (written by the driver only)
        cache/              the step cache: one entry per run, written atomically by workers
        runs/<run_id>/      each run's own directory (artifacts, outputs)
        plots/              PNGs written by assay plot and the demo
        provenance/diffs/   <sha256>.diff: the uncommitted changes the runs were made from
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ._index import ResultsIndex
from ._marker import claim_folder
from ._schema import INDEX_NAME

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
    with ResultsIndex(root, read_only=True) as index:
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


def clear_targets(folder: str | Path) -> list[tuple[Path, int, int]]:
    """List what ``cache_clear`` removes: ``(path, files, bytes)`` of each present target.

    Raises:
        FileNotFoundError: the folder is not an experiment folder.
        ForeignFolderError: assay did not create the folder (another tool's ``index.sqlite``).

    """
    root = Path(folder)
    claim_folder(root, create=False)  # refuse a folder that is not ours
    targets = []
    for sub in (CACHE, RUNS):
        if (root / sub).exists() or (root / sub).is_symlink():
            files = _files(root / sub)
            targets.append((root / sub, len(files), sum(p.stat().st_size for p in files)))
    targets += [(path, 1, path.stat().st_size) for path in _index_files(root)]
    return targets


def cache_clear(folder: str | Path) -> int:
    """Remove the cache, run directories and results index of an experiment folder.

    Only a folder that assay created (its ``.assay-experiment`` marker, or an index that assay
    wrote before markers existed) is cleared. Other files in the folder (the marker, plots,
    anything the user put there) are kept. Asking for confirmation is the caller's part
    (``assay cache clear`` asks, or takes ``--yes``).

    Returns:
        The number of files removed.

    Raises:
        FileNotFoundError: the folder is not an experiment folder (nothing is removed).
        ForeignFolderError: assay did not create the folder (nothing is removed).

    """
    removed = 0
    for path, files, _ in clear_targets(folder):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:  # a file, or a link: the link goes, never what it points to
            path.unlink(missing_ok=True)
        removed += files
    return removed
