"""How long after a folder's modification a listing of it may miss a change.

Used where a folder is listed again only when its modification time changed: the segments of
an entries folder (see ``_catalog.py``) and the job references (see ``_jobrefs.py``).
"""

from __future__ import annotations


def racy_seconds(mtime_ns: int) -> float:
    """Return how long after ``mtime_ns`` a listing of its folder may miss a change.

    A folder modified less than this long before it was listed is listed again (as git's
    racy-clean rule): a file created within the same tick of the file system's clock leaves
    the folder's time unchanged. A time of whole seconds comes from a file system with coarse
    times (Lustre, many NFS servers): two seconds; else its clock ticks in milliseconds.
    """
    return 2.0 if mtime_ns % 1_000_000_000 == 0 else 0.05
