"""``assay cache explain``: what the cached results of a folder were computed from.

For an experiment folder: the operation, what its code fingerprint covers now (functions with
file and line, references it cannot follow), and how many runs each recorded code produced.
For every step folder of a cache: its code versions, which one is current, which one keeps
another's entries, and the functions each version covered.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from assay_ops import import_operation
from assay_steps import StepPaths

from ._cachefolder import count_entries
from ._folder import CACHE
from ._folderpath import check_folder
from ._index import ResultsIndex
from ._schema import INDEX_NAME


def explain(folder: str | Path) -> str:
    """Describe what the cached results under ``folder`` were computed from.

    ``folder`` is an experiment folder or a step cache folder (a backend's ``folder``).

    Raises:
        FileNotFoundError: ``folder`` holds neither an experiment nor a step cache.
        ValueError: ``folder`` is a file.

    """
    root = check_folder(folder, "folder", "an experiment folder, or a step cache folder")
    lines: list[str] = []
    cache = root
    if (root / INDEX_NAME).is_file():
        lines += _experiment_lines(root)
        cache = root / CACHE
    step_folders = sorted(p.parent for p in cache.glob("*/config.json"))
    if not lines and not step_folders:
        raise FileNotFoundError(
            f"{str(root)!r} holds neither an experiment (index.sqlite) nor a step cache "
            "(<Step>-<uid>/config.json); expected an experiment folder or a backend's folder"
        )
    for step_folder in step_folders:
        lines += _step_lines(step_folder)
    return "\n".join(lines)


def _experiment_lines(root: Path) -> list[str]:
    with ResultsIndex(root, read_only=True) as index:
        identity = index.get_meta("experiment", {}) or {}
        hashes = Counter(row.code_hash or "" for row in index.rows())
    ref = identity.get("operation")
    lines = [f"experiment {identity.get('name')!r} in {root}", f"  operation: {ref}"]
    current = ""
    if isinstance(ref, str):
        try:
            operation = import_operation(ref)
        except Exception as error:  # a moved or broken module: said, not fatal
            lines.append(f"  cannot import it now: {type(error).__name__}: {error}")
        else:
            current = operation.code_hash
            lines.append(f"  code hash now: {current}")
            lines += ["    " + line for line in operation.code_report().splitlines()]
    lines.append("  runs by the code that computed them:")
    for code_hash, count in hashes.most_common():
        mark = " (the code now)" if code_hash and code_hash == current else ""
        lines.append(f"    {code_hash or 'unknown'}: {count} run(s){mark}")
    return lines


def _step_lines(step_folder: Path) -> list[str]:
    lines = [f"step folder {step_folder.name}"]
    config = _read(step_folder / "config.json")
    steps = [s.get("type", "?") for s in config.get("steps", []) if isinstance(s, dict)]
    if steps:
        lines.append(f"  steps: {' -> '.join(map(str, steps))}")
    if config.get("encoding") is None:
        lines.append("  written by an older version of assay (uid encoding 2): stale")
    versions = StepPaths(step_folder.parent, step_folder.name).code_versions()
    for position, data in enumerate(versions):
        paths = StepPaths(step_folder.parent, step_folder.name, str(data["version"]))
        entries = count_entries(paths.entries_folder)  # from the catalog: frames, not files
        state = "current" if position == len(versions) - 1 else "older"
        keeps = data.get("keeps")
        what = f"keeps the entries of {keeps}" if keeps else f"{entries} entries"
        lines.append(
            f"  code {data.get('version')}: {state}, created {data.get('created')}, {what}"
        )
        fingerprint = data.get("fingerprint") or {}
        pinned = data.get("pinned")
        if pinned:
            lines.append(f"    pinned by hand: {', '.join(map(str, pinned))}")
        for name, info in sorted((fingerprint.get("functions") or {}).items()):
            where = f"{info.get('file')}:{info.get('line')}" if isinstance(info, dict) else "?"
            lines.append(f"    {name} ({where})")
    return lines


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
