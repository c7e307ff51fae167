"""assay_backends — run the missing items of assay steps in pools, local processes or on Slurm.

Each backend is a [`assay_steps.Backend`][assay_steps.Backend]: set it as a step's ``infra`` (or
name it in an ``infra={"backend": "ProcessPool", ...}`` dict) and the step's cache engine hands it
the items to compute. Workers write every result to the cache themselves, atomically.

Examples:
    >>> from assay_steps import Step
    >>> import assay_backends
    >>> class Double(Step):
    ...     def _run(self, value: int) -> int:
    ...         return 2 * value
    >>> step = Double(infra={"backend": "ThreadPool", "folder": "cache"})
    >>> list(step.run_many([1, 2]))
    [2, 4]

"""

from .__about__ import __version__ as __version__
from ._detect import SlurmUnavailableError, slurm_available
from ._failures import JobFailure, JobsFailed
from ._jobs import JobError
from ._pools import ProcessPool, ThreadPool
from ._signals import current_job, current_job_logs, job_logs
from ._states import job_states
from ._submitit import Auto, LocalProcess, Slurm, SubmititDebug
from ._watch import watch

__all__ = [
    "Auto",
    "JobError",
    "JobFailure",
    "JobsFailed",
    "LocalProcess",
    "ProcessPool",
    "Slurm",
    "SlurmUnavailableError",
    "SubmititDebug",
    "ThreadPool",
    "current_job",
    "current_job_logs",
    "job_logs",
    "job_states",
    "slurm_available",
    "watch",
]
