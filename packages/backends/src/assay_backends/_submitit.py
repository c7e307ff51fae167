"""The submitit backends: items packed into jobs run by local processes, inline, or on Slurm."""

from __future__ import annotations

from typing import Any, ClassVar

import submitit

from ._detect import require_slurm, slurm_available
from ._submitit_base import SubmititBackend

#: Fields of the Slurm backend that submitit knows under a ``slurm_`` prefix.
_SLURM_ONLY = ("constraint", "partition", "account", "qos", "additional_parameters", "use_srun")


class LocalProcess(SubmititBackend):
    """Compute missing items in submitit jobs run as processes on this machine.

    Items are packed into at most ``max_jobs`` jobs of at least ``min_items_per_job`` items;
    each job is a separate Python process with its own logs under ``<step folder>/logs/``.

    Args:
        job_name: Name of the jobs.
        timeout_min: Time limit of a job, in minutes.
        nodes: Nodes per job (Slurm only; ignored locally).
        tasks_per_node: Tasks per node.
        cpus_per_task: CPUs per task.
        gpus_per_node: GPUs per node.
        mem_gb: Memory per job, in GB.
        max_jobs: Most jobs to pack the items into.
        min_items_per_job: Fewest items per job (items are combined below this count).
        array_parallelism: Slurm only: most tasks of a job array running at once (``%N`` of
            ``--array``); ``None`` (the default) sets no throttle. Local jobs all start at
            once (``max_jobs`` bounds them).
        setup: Shell lines run before each job starts Python, e.g. ``["module load cuda"]``.
        conda_env: A conda environment to activate before each job (after ``setup``); the
            job then runs the ``python`` of that environment.
        venv: A virtual environment folder to activate (``source <venv>/bin/activate``);
            the job then runs its ``python``.
        code_snapshot: A folder where each submission copies the user's code (the files git
            tracks, or the ``.py`` files under the working directory), in a subfolder named
            by its content; jobs import from the copy and start in it, so that editing the
            code while they wait does not change what they run. Relative paths in inputs
            then resolve against the copy.
        log_folder: Where the jobs' logs go (one folder per job); default
            ``<step folder>/logs``.
        signal_delay_s: Seconds before the time limit at which the warning signal is sent
            (submitit's default: 90 on Slurm, 30 locally). Slurm checks limits every 30 s
            or so, so the warning comes up to that much later.
        max_requeues: Most times a job is requeued to resume from a checkpoint when its time
            limit is near (see "Time limits" below).
        progress: Show a progress bar (rich); ``None`` shows it only when stderr is a terminal.

    Time limits: the warning signal before a job's limit never stops a run. A run that
    registered a checkpoint hook (``assay_ops.Runtime.on_timeout``) has its state saved and
    its job requeued (up to ``max_requeues`` times; the job then computes the items not yet
    cached, and the run resumes from ``Runtime.checkpoint()``); otherwise the warning is
    noted on stderr and the run goes on until the limit.

    Failures: the wait goes on past jobs that fail, are cancelled or time out, and raises
    [`JobsFailed`][assay_backends.JobsFailed] once every job ended, with one
    [`JobFailure`][assay_backends.JobFailure] each; the other jobs' items are computed. Inside
    [`watch`][assay_backends.watch], a callback sees failures as they come and can stop the
    submission.

    Examples:
        >>> from assay_steps import Step
        >>> class Triple(Step):
        ...     def _run(self, value: int) -> int:
        ...         return 3 * value
        >>> infra = {"backend": "LocalProcess", "folder": "cache", "max_jobs": 2}
        >>> list(Triple(infra=infra).run_many([1, 2, 3]))  # doctest: +SKIP
        [3, 6, 9]

    """

    _CLUSTER: ClassVar[str] = "local"


class SubmititDebug(SubmititBackend):
    """Run jobs inline through submitit's debug executor, to debug a job's code in place.

    Same fields and packing as [`LocalProcess`][assay_backends.LocalProcess], but the jobs run in
    this process, one after the other, so a debugger or ``breakpoint()`` works inside them.

    Examples:
        >>> from assay_steps import Step
        >>> class Negate(Step):
        ...     def _run(self, value: int) -> int:
        ...         return -value
        >>> list(Negate(infra={"backend": "SubmititDebug", "folder": "cache"}).run_many([1, 2]))
        [-1, -2]

    """

    _CLUSTER: ClassVar[str] = "debug"

    new_interpreter: ClassVar[bool] = False

    def _before_wait(self, jobs: list[submitit.Job[Any]]) -> None:
        # Debug jobs run only when their result is asked for: ask, in order.
        for job in jobs:
            job.exception()


class Slurm(SubmititBackend):
    """Compute missing items in Slurm jobs (a job array), submitted with submitit.

    Raises [`SlurmUnavailableError`][assay_backends.SlurmUnavailableError] when used on a machine
    without ``sbatch``.

    Args:
        constraint: ``--constraint`` of the jobs.
        partition: ``--partition``.
        account: ``--account``.
        qos: ``--qos``.
        additional_parameters: Further ``sbatch`` options, e.g. ``{"mail_type": "END"}``.
        use_srun: Start the job's process through ``srun``. ``None`` (the default) keeps
            submitit's default, ``srun``, which lets Slurm's warning signal before the time
            limit reach the job (for checkpointing). ``False`` runs Python directly in the
            batch script (for jobs that call ``srun`` themselves); no warning reaches it.

    Every task of a submission is submitted at once, as job arrays of at most Slurm's
    ``MaxArraySize - 1`` tasks. Jobs are submitted with ``--requeue`` (unless
    ``additional_parameters`` says otherwise), so that Slurm requeues them after a node
    failure; a requeued job is followed until it ends.

    The fields of [`LocalProcess`][assay_backends.LocalProcess] apply too.

    Examples:
        >>> infra = {"backend": "Slurm", "folder": "cache", "partition": "debug", "max_jobs": 4}
        >>> Slurm.model_validate({k: v for k, v in infra.items() if k != "backend"}).max_jobs
        4

    """

    constraint: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    additional_parameters: dict[str, int | str | float | bool] | None = None
    use_srun: bool | None = None

    _CLUSTER: ClassVar[str] = "slurm"

    def _cluster(self) -> str:
        require_slurm(type(self).__name__)
        return "slurm"

    def _parameters(self) -> dict[str, Any]:
        params = super()._parameters()
        for name in _SLURM_ONLY:
            value = getattr(self, name)
            if value is not None:
                params[f"slurm_{name}"] = value
        return params


class Auto(Slurm):
    """Slurm where ``sbatch`` exists, else local processes (Slurm fields then ignored).

    Examples:
        >>> backend = Auto(folder="cache", partition="gpu")
        >>> backend._cluster() in ("slurm", "local")
        True

    """

    _CLUSTER: ClassVar[str] = ""

    def _cluster(self) -> str:
        return "slurm" if slurm_available() else "local"
