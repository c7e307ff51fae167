"""Job references: small JSON files naming the job a backend ran a task's items in.

``jobs/<name>.json`` holds ``{"ref": {"backend": <backend class name>, **ref}, "uids": [...]}``:
one file per task (not per item); a backend writes it through ``ItemTask.attach_job`` and reads
it back through ``ItemTask.job_ref`` (to find the items of jobs still running), and
``LookupHandle.job`` turns it into a job object. When several files name an item, the newest
(by modification time, then name) is its reference.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from ._arrays import open_regular
from ._durable import write_atomic
from ._frames import CorruptEntryError
from ._paths import StepPaths, check_name
from ._racy import racy_seconds

_JOBS_SUFFIX = ".json"
# Per jobs folder: (the folder's modification time when read, uid -> reference, when read).
_read_cache: dict[str, tuple[int, dict[str, dict[str, Any]], float]] = {}
_guard = threading.Lock()


def write_job_refs(paths: StepPaths, uids: Iterable[str], ref: dict[str, Any]) -> None:
    """Write the job reference ``ref`` for every item of ``uids``, in one file, atomically."""
    names = [check_name(uid, "item uid") for uid in uids]
    data = json.dumps({"ref": ref, "uids": names}).encode()  # ref may hold any key
    paths.job_folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():016x}-{uuid.uuid4().hex[:8]}{_JOBS_SUFFIX}"
    write_atomic(paths.job_folder / name, [data], fsync=False)


def read_job_ref(paths: StepPaths, uid: str) -> dict[str, Any] | None:
    """Return the job reference of item ``uid``, or None if none (or no valid one) exists."""
    check_name(uid, "item uid")  # a bad uid is an error, not a missing reference
    ref = job_refs(paths).get(uid)
    return None if ref is None else dict(ref)  # the caller's to change


def job_refs(paths: StepPaths) -> dict[str, dict[str, Any]]:
    """Return the newest job reference of every item of a code version folder, by item uid.

    One read of the folder's ``jobs/`` files, kept until the folder changes: the bulk form of
    ``LookupHandle.job()``, for a tool that shows where many items run (``assay status``).
    The mapping is shared: copy a reference before changing it.

    Args:
        paths: the step folder and code version (``LookupHandle.paths``).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> paths = StepPaths(Path(tempfile.mkdtemp()), "Mult-0")
        >>> write_job_refs(paths, ["a", "b"], {"backend": "Slurm", "job_id": "7_0"})
        >>> ref = job_refs(paths)["b"]
        >>> ref.get("job_id")
        '7_0'

    """
    folder = str(paths.job_folder)
    try:
        listed = os.stat(folder).st_mtime_ns
    except FileNotFoundError:
        return {}
    with _guard:
        cached = _read_cache.get(folder)
        # A folder listed within its time granularity of a change may change unseen again.
        if (
            cached is not None
            and cached[0] == listed
            and cached[2] - listed / 1e9 > racy_seconds(listed)
        ):
            return cached[1]
    read_at = time.time()
    refs: dict[str, dict[str, Any]] = {}
    for _, name in sorted(_listing(folder)):
        data = _read(os.path.join(folder, name))
        ref = None if data is None else data.get("ref")
        if not isinstance(ref, dict):
            continue
        uids = data.get("uids", []) if data is not None else []
        for uid in uids if isinstance(uids, list) else ():
            if isinstance(uid, str):
                refs[uid] = ref
    with _guard:
        _read_cache[folder] = (listed, refs, read_at)
    return refs


def _listing(folder: str) -> list[tuple[int, str]]:
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(_JOBS_SUFFIX) and not entry.name.startswith("."):
                try:
                    found.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
                except OSError:
                    continue
    return found


def _read(path: str) -> dict[str, Any] | None:
    try:
        fd = open_regular(path)
    except (FileNotFoundError, CorruptEntryError):
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            ref = json.loads(f.read())
        except ValueError:
            return None
    return ref if isinstance(ref, dict) else None
