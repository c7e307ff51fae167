"""Records and artifacts of runs read back from an experiment folder.

A record's paths are moved along with the folder (``_moved``), and an artifact's file is
checked against the size and SHA-256 its run recorded before it is returned (``_verified``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._folder import RUNS

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from assay_ops import RunRecord


def _verified(artifact: dict[str, Any], run_id: str) -> Path:
    """Return the path of ``artifact`` once its file matches the recorded size and SHA-256."""
    name, path = artifact.get("name"), artifact.get("path")
    if not isinstance(path, str):
        raise FileNotFoundError(
            f"artifact {name!r} of run {run_id} was not written to a file (the run had no run "
            "folder); expected an artifact of an experiment's run"
        )
    expected, size = artifact.get("sha256"), artifact.get("size")
    digest = hashlib.sha256()
    read = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            read += len(chunk)
    if expected is None or (read, digest.hexdigest()) != (size, expected):
        raise ValueError(
            f"artifact file {path!r} of run {run_id} does not match its record: {read} bytes "
            f"with sha256 {digest.hexdigest()}, expected {size} bytes with sha256 {expected} "
            "as the run wrote it; the file was changed or damaged since: run the run again "
            "(assay reproduce keeps a fresh copy) rather than reading this file"
        )
    return Path(path)


def _moved(record: RunRecord, runs: str) -> RunRecord:
    """Point a record's run folder and artifact paths into ``runs``, where the run is now.

    A run records the absolute path of its folder, ``<experiment>/runs/<run id>``; after the
    experiment folder was moved or copied (laptop to cluster), the recorded paths lead to the
    old place, where an old copy may still sit. The run's folder is the anchor: paths inside
    it are moved along; anything else is kept as recorded.
    """
    recorded = record.runtime.get("run_dir")
    here = f"{runs}{os.sep}{record.run_id}"
    tail = f"{os.sep}{RUNS}{os.sep}{record.run_id}"
    if not isinstance(recorded, str) or recorded == here or not recorded.endswith(tail):
        return record
    inside = recorded + os.sep
    artifacts = [
        {**artifact, "path": here + artifact["path"][len(recorded) :]}
        if isinstance(artifact.get("path"), str) and artifact["path"].startswith(inside)
        else artifact
        for artifact in record.artifacts
    ]
    runtime = {**record.runtime, "run_dir": here}
    return dataclasses.replace(record, runtime=runtime, artifacts=artifacts)
