"""What a run used: CPU time, peak memory and wall time, measured in the worker around it.

The numbers go into the record's ``runtime["resources"]``; ``assay status --resources`` reads
them back and suggests the ``--mem`` and ``--time`` of the next sweep.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

try:  # not on Windows: there the resources are the wall time alone
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

# ru_maxrss is in kibibytes on Linux and in bytes on macOS.
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024


def _cpu_and_rss() -> tuple[float, int | None]:
    """Return the CPU seconds of this process and its children, and the peak RSS in bytes."""
    if resource is None:  # pragma: no cover - Windows
        return 0.0, None
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return cpu, max(own.ru_maxrss, children.ru_maxrss) * _RSS_UNIT


class Usage:
    """Measures one run from its creation to ``measure``.

    The peak RSS is the process's (or a child's) peak so far: a job that runs several runs one
    after the other reports, for each, the most memory the job needed up to its end, which is
    what a job's ``--mem`` must hold.

    Examples:
        >>> usage = Usage()
        >>> sorted(usage.measure())
        ['cpu_s', 'elapsed_s', 'max_rss_bytes']

    """

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu, _ = _cpu_and_rss()

    def measure(self) -> dict[str, Any]:
        """Return ``cpu_s``, ``max_rss_bytes`` (None where unknown) and ``elapsed_s`` so far."""
        cpu, rss = _cpu_and_rss()
        return {
            "cpu_s": round(cpu - self._cpu, 6),
            "max_rss_bytes": rss,
            "elapsed_s": round(time.perf_counter() - self._wall, 6),
        }


def current_job() -> tuple[str | None, int]:
    """Return the batch job this process runs in (None outside one) and the CPUs it was given.

    Asked of the backends layer, which knows the schedulers' environments
    (``assay_backends.current_job``). A process that no scheduler started has none of their
    variables: it is answered without importing that layer (and submitit), which an inline
    sweep would otherwise pay for at its first run.
    """
    if not any(name.startswith(_SCHEDULER_PREFIXES) for name in os.environ):
        return None, 1
    from assay_backends import current_job as read_job

    return read_job()


#: Prefixes of the variables that the schedulers assay runs on set in a job's environment.
_SCHEDULER_PREFIXES = ("SLURM_", "SUBMITIT_")


def job_logs() -> tuple[str, str] | None:
    """Return the stdout and stderr paths of the submitit job this process runs in, or None.

    Asked of the backends layer (imported here, in a job only: an inline run never pays for
    submitit); None where that layer cannot tell.
    """
    try:
        from assay_backends import current_job_logs
    except ImportError:
        return None
    try:
        found = current_job_logs()
    except Exception:  # the logs are a convenience: a run never fails for want of them
        return None
    if found is None:
        return None
    return str(found[0]), str(found[1])
