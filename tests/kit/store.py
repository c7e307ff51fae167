"""What a test does to the cache store of its own process."""

from __future__ import annotations

from assay_steps import _segments


def finish_writers() -> None:
    """Close this process's segment writers, as the end of a sweep's process would."""
    for writer in list(_segments._writers.values()):
        writer._close()
    _segments._writers.clear()
