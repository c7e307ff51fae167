"""Reading a cache or experiment folder back after a fault, and counting what went wrong."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from layout import DELETED, new_process, newest
from reliability_steps import ItemFailed, ReliabilityPayload, expected, fails, same, segments

from assay import Results

#: Figures of the whole suite, printed at the end of the session (see conftest.py).
FIGURES: dict[str, int] = {}


def count(name: str, amount: int = 1) -> None:
    """Add ``amount`` to the suite figure ``name``."""
    FIGURES[name] = FIGURES.get(name, 0) + amount


@dataclasses.dataclass
class Audit:
    """What a read-only pass over a step folder found."""

    complete: int = 0  # items whose entry reads back (a result or the item's cached error)
    missing: int = 0  # items without an entry (not computed yet)
    corrupt: int = 0  # items with a frame (or an older entry file) that does not verify
    wrong: list[str] = dataclasses.field(default_factory=list)  # items read back wrong


def audit_steps(folder: Path, items: Iterable[int]) -> Audit:
    """Read every item of a :class:`ReliabilityPayload` cache in read-only mode, from disk.

    Read as a new process reads it: nothing this process remembers of the folder is used.
    """
    new_process()
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": folder, "mode": "read-only"})
    found = Audit()
    for i in items:
        handle = step.lookup(i)
        status = handle.status
        if status == "success":
            value: Any = handle.result()
            if fails(i) or not same(value, expected(i)):
                found.wrong.append(f"item {i}: read {value!r:.80}")
            else:
                found.complete += 1
        elif status == "error":
            try:
                handle.result()
            except ItemFailed as error:
                if fails(i) and str(error) == f"item {i} fails on purpose":
                    found.complete += 1
                else:
                    found.wrong.append(f"item {i}: cached error {error!r}")
            except Exception as error:
                found.wrong.append(f"item {i}: cached error of the wrong type {error!r}")
            else:
                found.wrong.append(f"item {i}: status 'error' but result() returned")
        elif has_entry(handle.paths.entries_folder, handle.uid):
            found.corrupt += 1
        else:
            found.missing += 1
    return found


def has_entry(entries: Path, uid: str) -> bool:
    """Whether a whole frame (or an entry file of the older layout) holds an entry of ``uid``."""
    frame = newest(entries, uid)
    if frame is not None:
        return frame.kind != DELETED
    return any((entries / "cache" / f"{uid}.{ext}").exists() for ext in ("pkl", "npy"))


#: The files of a cache folder (relative to its root): the marker, each step's configuration,
#: and in each code version's entries folder its record, segments, large arrays, saved catalog,
#: claims and heartbeats, job references and the entries of the older layout.
_LAYOUT = re.compile(
    r"\.assay-cache|[^/]+/config\.json"
    r"|[^/]+/code-[^/]+/(code\.json|index|segments/[^/.][^/]*\.seg|arrays/[^/.][^/]*\.npy"
    r"|claims/[^/.][^/]*\.(claim|beat)|jobs/[^/.][^/]*\.json|cache/[^/.][^/]*\.(pkl|npy))"
)


def stray_files(folder: Path) -> list[str]:
    """Files in the cache ``folder`` that are neither part of its layout nor temporary files.

    A temporary file (``*.tmp``) is a write that never reached its rename: it is never read,
    and is listed by :func:`layout.temporaries` instead.
    """
    return [
        str(path)
        for path in folder.rglob("*")
        if path.is_file()
        and not path.name.endswith(".tmp")
        and not _LAYOUT.fullmatch(path.relative_to(folder).as_posix())
    ]


def metrics_by_run(results: Results) -> dict[str, tuple[str, dict[str, Any]]]:
    """Status and metrics of every run, by run id: what must equal a clean run's."""
    return {row.run_id: (row.status, dict(row.metrics)) for row in results}


def check_items_from_run_many(folder: Path, items: list[int]) -> list[str]:
    """Read every item through ``run_many`` in read-only mode; describe each wrong value."""
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": folder, "mode": "read-only"})
    wrong = []
    for segment in segments(items):
        try:
            values = list(step.run_many(segment))
        except ItemFailed:  # normally the segment's last item: read one at a time to know
            for i in segment:
                try:
                    (value,) = step.run_many([i])
                except ItemFailed:
                    if not fails(i):
                        wrong.append(f"item {i}: raised ItemFailed")
                    continue
                if fails(i) or not same(value, expected(i)):
                    wrong.append(f"item {i}: {value!r:.80}")
            continue
        for i, value in zip(segment, values, strict=True):
            if fails(i) or not same(value, expected(i)):
                wrong.append(f"item {i}: {value!r:.80}")
    return wrong
