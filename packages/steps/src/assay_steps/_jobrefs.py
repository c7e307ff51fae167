"""Job references: small JSON files naming the job a backend ran an item in.

``jobs/<uid>.json`` holds ``{"backend": <backend class name>, **ref}``; a backend writes it
through ``ItemTask.attach_job`` and reads it back through ``ItemTask.job_ref`` (to find the
items of jobs still running), and ``LookupHandle.job`` turns it into a job object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._durable import write_atomic
from ._paths import StepPaths, check_name


def write_job_refs(paths: StepPaths, uids: Iterable[str], ref: dict[str, Any]) -> None:
    """Write the job reference ``ref`` for every item of ``uids``, each file atomically."""
    data = json.dumps(ref).encode()
    paths.job_folder.mkdir(parents=True, exist_ok=True)
    for uid in uids:
        write_atomic(_path(paths, uid), [data], fsync=False)


def read_job_ref(paths: StepPaths, uid: str) -> dict[str, Any] | None:
    """Return the job reference of item ``uid``, or None if none (or no valid one) exists."""
    path = _path(paths, uid)  # outside the try: a bad uid is an error, not a missing file
    try:
        ref = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return ref if isinstance(ref, dict) else None


def _path(paths: StepPaths, uid: str) -> Path:
    # The uid becomes a file name: a hostile one must not reach the disk.
    return paths.job_folder / f"{check_name(uid, 'item uid')}.json"
