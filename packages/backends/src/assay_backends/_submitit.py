"""submitit backends: items packed into jobs run by local processes, inline, or on Slurm."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import time
from collections import OrderedDict
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import pydantic
import submitit
from assay_steps import Backend, ItemTask, StepPaths

from ._detect import require_slurm, slurm_available
from ._jobs import HOST, ActiveJobs, JobError, active_slurm_jobs, wait_until_inactive
from ._progress import ProgressBar, progress_enabled
from ._slurm_job import ControllerSlurmJob, with_controller_state
from ._tasks import dumps, item_count, loads, run_shard, shard, share

#: The most recent jobs submitted by this process, by (cluster, job id), so that
#: ``LookupHandle.job()`` hands back the very object (a debug job cannot be rebuilt from its
#: folder). Bounded, so that a long session does not keep every job alive.
_SUBMITTED: OrderedDict[tuple[str, str], submitit.Job[Any]] = OrderedDict()
_KEEP_JOBS = 4096
#: Pause between two looks at the jobs of a submission during its first minute.
POLL_SECONDS = 0.2
#: Pause between two looks at Slurm's queue for jobs that ended without a result. submitit
#: asks ``sacct`` ever more rarely (up to every 10 minutes); ``squeue`` is cheap.
QUEUE_POLL_SECONDS = 5.0


def _remember(cluster: str, job: submitit.Job[Any]) -> None:
    _SUBMITTED[(cluster, str(job.job_id))] = job
    while len(_SUBMITTED) > _KEEP_JOBS:
        _SUBMITTED.popitem(last=False)


#: Fields of the Slurm backend that submitit knows under a ``slurm_`` prefix.
_SLURM_ONLY = ("constraint", "partition", "account", "qos", "additional_parameters", "use_srun")
#: The signal submitit asks Slurm to send before a job's time limit (``--signal=USR2@...``).
_WARNING_SIGNAL = signal.SIGUSR2
_GENERIC = ("timeout_min", "nodes", "tasks_per_node", "cpus_per_task", "gpus_per_node", "mem_gb")


class _Interrupted(BaseException):
    """Slurm's warning signal (time limit or preemption) arrived while items were computed.

    A ``BaseException``, so that the steps layer does not cache it as the current item's error:
    the interrupted item stays uncached and a rerun computes it.
    """

    def __init__(self, signum: int, frame: FrameType | None) -> None:
        super().__init__(signum)
        self.signum = signum
        self.frame = frame


def _job_main(shard_: list[ItemTask]) -> BaseException | None:
    """Run a shard inside a job; hand back (not raise) an exception escaping a task.

    Returned, the exception reaches the caller with its own type instead of submitit's
    ``FailedJobError`` wrapping its text. submitit's handler of the warning signal that Slurm
    sends before a time limit (or a preemption) raises inside whatever code runs; it is
    deferred here until the running item has been abandoned, then called as submitit meant.
    """
    previous = signal.getsignal(_WARNING_SIGNAL)
    # Only in a real job: submitit installed a handler (debug jobs run in the caller, perhaps
    # outside the main thread, where handlers cannot be set).
    deferring = callable(previous)
    if deferring:
        signal.signal(_WARNING_SIGNAL, _raise_interrupted)
    try:
        run_shard(shard_)
    except _Interrupted as interrupted:
        signal.signal(_WARNING_SIGNAL, previous)
        assert callable(previous)
        # Raises "timed-out and not checkpointable", or requeues a preempted job and exits.
        previous(interrupted.signum, interrupted.frame)
        raise RuntimeError("the job was interrupted by Slurm's warning signal") from None
    except Exception as error:
        return error
    finally:
        if deferring:
            signal.signal(_WARNING_SIGNAL, previous)
    return None


def _job_main_pickled(payload: bytes) -> BaseException | None:
    """Unpickle a shard made by :func:`~assay_backends._tasks.dumps` and run this task's part."""
    shard_: list[ItemTask] = loads(payload)
    rank, count = _task_rank()
    return _job_main(share(shard_, rank, count))


def _task_rank() -> tuple[int, int]:
    """Return this process's rank among the tasks of its job, and their number."""
    try:
        environment = submitit.JobEnvironment()
        return environment.global_rank, environment.num_tasks
    except RuntimeError:  # not inside a submitit job (a debug job runs in the caller)
        return 0, 1


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signum, frame)


class _SubmititBackend(Backend):
    """Base of the submitit backends: packing, submission, waiting, job references."""

    job_name: str | None = None
    timeout_min: int | None = pydantic.Field(default=None, gt=0)
    nodes: int | None = pydantic.Field(default=None, gt=0)
    tasks_per_node: int | None = pydantic.Field(default=None, gt=0)
    cpus_per_task: int | None = pydantic.Field(default=None, gt=0)
    gpus_per_node: int | None = pydantic.Field(default=None, ge=0)
    mem_gb: float | None = pydantic.Field(default=None, gt=0)
    max_jobs: int = pydantic.Field(default=128, gt=0)
    min_items_per_job: int = pydantic.Field(default=1, gt=0)
    progress: bool | None = None

    _CLUSTER: ClassVar[str] = ""

    def _cluster(self) -> str:
        return self._CLUSTER

    def _parameters(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in _GENERIC if getattr(self, name) is not None}
        if self.job_name is not None:
            params["name"] = self.job_name
        return params

    def _execute(self, tasks: list[ItemTask]) -> None:
        cluster = self._cluster()
        tasks, elsewhere = _skip_running(tasks)
        try:
            if tasks:
                self._run_jobs(cluster, tasks)
        finally:
            # Items of jobs that other processes submitted: wait for those jobs, not twice.
            wait_until_inactive(elsewhere)

    def _run_jobs(self, cluster: str, tasks: list[ItemTask]) -> None:
        shards = shard(tasks, self.max_jobs, self.min_items_per_job)
        # Absolute: jobs may start in another working directory.
        logs = tasks[0].paths.logs_folder.absolute() / "%j"
        executor = submitit.AutoExecutor(folder=logs, cluster=cluster)
        params = self._parameters()
        if cluster == "slurm":
            params["slurm_array_parallelism"] = len(shards)
        executor.update_parameters(**params)
        # clean_env: a submission from inside a Slurm job must not inherit that job's settings.
        try:
            with submitit.helpers.clean_env(), executor.batch():
                jobs = [executor.submit(_job_main_pickled, dumps(piece)) for piece in shards]
        except submitit.core.utils.FailedJobError as error:
            # The scheduler refused the submission (sbatch's error, from submitit): say which
            # fields asked for what, since Slurm names its own option at best.
            raise self._refused(shards, error) from error
        if cluster == "slurm":
            # submitit makes the tasks of an array as plain SlurmJobs: the same jobs, whose
            # state does not say UNKNOWN while accounting lags behind.
            jobs = [with_controller_state(job, str(logs)) for job in jobs]
        for job, piece in zip(jobs, shards, strict=True):
            _remember(cluster, job)
            ref = {"cluster": cluster, "job_id": str(job.job_id), "folder": str(logs), "host": HOST}
            for task in piece:
                task.attach_job(ref)
        try:
            self._wait(jobs, shards, tasks)
        finally:
            _drop_template_folder(logs)

    def _wait(
        self, jobs: list[submitit.Job[Any]], shards: list[list[ItemTask]], tasks: list[ItemTask]
    ) -> None:
        name = f"{type(tasks[0].step).__name__} ({type(self).__name__}, {len(jobs)} jobs)"
        failures: list[BaseException] = []
        with ProgressBar(item_count(tasks), name, progress_enabled(self.progress)) as bar:
            waiting = dict(zip(jobs, shards, strict=True))
            delay, start = 0.05, time.monotonic()
            next_queue_look = start + QUEUE_POLL_SECONDS
            while waiting:
                finished = [job for job in waiting if job.done()]
                if not finished and time.monotonic() >= next_queue_look:
                    finished = _ended_without_result(list(waiting))
                    next_queue_look = time.monotonic() + QUEUE_POLL_SECONDS
                for job in finished:
                    piece = waiting.pop(job)
                    failure = _outcome(job, piece)
                    if failure is not None:
                        failures.append(failure)
                        if isinstance(failure, JobError) and isinstance(job, submitit.SlurmJob):
                            # A cancelled job lingers until SIGKILL: once this returns, nothing
                            # of it still runs, so a rerun starts from a quiet folder.
                            wait_until_inactive([{"cluster": "slurm", "job_id": str(job.job_id)}])
                    bar.advance(item_count(piece))
                if waiting and not finished:
                    time.sleep(delay)
                    # A result file is one stat away: poll briskly while short jobs are
                    # likely to end, then settle to once a second.
                    cap = POLL_SECONDS if time.monotonic() - start < 60 else 1.0
                    delay = min(2 * delay, cap)
        if failures:
            raise failures[0]

    def _refused(self, shards: list[list[ItemTask]], error: BaseException) -> JobError:
        """Return the error for a submission of ``shards`` that the scheduler refused."""
        tasks = [task for piece in shards for task in piece]
        steps = ", ".join(sorted({type(task.step).__name__ for task in tasks}))
        said = [line.strip() for line in str(error).splitlines() if line.strip()]
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("job_name", *_GENERIC, *_SLURM_ONLY)
            if getattr(self, name, None) is not None
        )
        return JobError(
            f"{type(self).__name__} could not submit {len(shards)} job(s) for the "
            f"{item_count(tasks)} item(s) of {steps}: {'; '.join(said) or type(error).__name__}. "
            f"Nothing was submitted and nothing is cached; check the job fields "
            f"({fields or 'all defaults'}) and run again."
        )

    @classmethod
    def _load_job(cls, ref: dict[str, Any], paths: StepPaths) -> Any | None:
        """Return the job of a reference: this process's own, or one rebuilt from its folder."""
        cluster, job_id = str(ref.get("cluster")), str(ref.get("job_id"))
        # The logs are in this step folder, wherever it is now: the folder recorded at
        # submission is where the cache was then (it may have been moved or copied since).
        logs = paths.logs_folder.absolute()
        own = _SUBMITTED.get((cluster, job_id))
        if own is not None and Path(own.paths.folder).parent == logs:
            return own
        folder = str(logs / "%j")
        if cluster == "slurm":
            return ControllerSlurmJob(folder=folder, job_id=job_id)
        if cluster == "local":
            return submitit.LocalJob(folder=folder, job_id=job_id)
        return None  # a debug job lives only in the process that ran it


def _ended_without_result(jobs: list[submitit.Job[Any]]) -> list[submitit.Job[Any]]:
    """Return the Slurm jobs among ``jobs`` that left the queue and that accounting says ended.

    ``job.done()`` sees a result file at once, but a job that ended without one (cancelled,
    killed) only at submitit's next ``sacct`` call, which late in a sweep is up to 10 minutes
    away. One ``squeue`` tells which jobs left the queue; for those, ``sacct`` is asked now
    (once for all). A job that accounting does not know to have ended yet is looked at again
    on the next call.
    """
    slurm_jobs = [job for job in jobs if isinstance(job, submitit.SlurmJob)]
    if not slurm_jobs:
        return []
    queued = active_slurm_jobs()
    if queued is None:  # Slurm does not answer: leave it to submitit
        return []
    gone = [job for job in slurm_jobs if str(job.job_id) not in queued]
    if not gone:
        return []
    gone[0].watcher.update()  # one sacct call updates every job it watches
    return [job for job in gone if job.done()]


def _drop_template_folder(folder: Path) -> None:
    """Remove the empty folder named by the template itself (``logs/%j``), if any.

    submitit's local job controller makes its folder argument, the unformatted template,
    before it makes the job's own folder (``logs/<job id>``), which keeps the logs.
    """
    with contextlib.suppress(OSError):  # absent, or not empty: then it is not ours to remove
        folder.rmdir()


def _skip_running(tasks: list[ItemTask]) -> tuple[list[ItemTask], list[dict[str, Any]]]:
    """Drop items being computed elsewhere: locked by a live process, or in an active job.

    Returns the remaining tasks and the references of the active jobs to wait for.
    """
    checker = ActiveJobs()
    kept: list[ItemTask] = []
    elsewhere: list[dict[str, Any]] = []
    for task in tasks:
        if task.force:  # force and retry recompute whatever is cached
            kept.append(task)
            continue
        running = task.running_uids()  # the steps layer waits for locked items itself
        keep: list[int] = []
        for index, uid in enumerate(task.uids):
            if uid in running:
                continue
            ref = task.job_ref(uid)
            if ref is not None and checker.is_active(ref):
                elsewhere.append(ref)
                continue
            keep.append(index)
        if len(keep) == len(task.uids):
            kept.append(task)
        elif keep:
            kept.append(_subset(task, keep))
    return kept, elsewhere


def _subset(task: ItemTask, indices: list[int]) -> ItemTask:
    return dataclasses.replace(
        task, uids=[task.uids[i] for i in indices], values=[task.values[i] for i in indices]
    )


def _outcome(job: submitit.Job[Any], piece: list[ItemTask]) -> BaseException | None:
    """Return the exception to raise for a finished job, or None if it ran to its end."""
    if isinstance(job, submitit.LocalJob):
        # submitit waits up to 15 s for a result file that a slow network file system may not
        # show yet. A local job's process wrote it before exiting, on this machine: once the
        # job is done, a missing file will never come.
        job._results_timeout_s = 0
    try:
        # One return per task (``tasks_per_node``): every task runs the shard's items.
        returned = job.results()
    except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as error:
        n_items = item_count(piece)
        steps = sorted({type(task.step).__name__ for task in piece})
        state = _state(job)
        failure = JobError(
            f"job {job.job_id} ({state}) ended before computing its {n_items} item(s) of "
            f"{', '.join(steps)}: {_reason(error)}. Items it did not finish stay uncached; "
            f"run again to compute them. Logs: {job.paths.stdout} and {job.paths.stderr}"
        )
        failure.__cause__ = error
        return failure
    escaped = next((value for value in returned if isinstance(value, BaseException)), None)
    if escaped is not None:
        if hasattr(escaped, "add_note"):
            escaped.add_note(f"raised in job {job.job_id}; logs: {job.paths.stderr}")
        return escaped
    return None


def _state(job: submitit.Job[Any]) -> str:
    try:
        return str(job.state)
    except Exception:  # the state is only decoration for the message
        return "state unknown"


def _reason(error: BaseException) -> str:
    """Return the telling line of a submitit error: Slurm's verdict, submitit's, or the last.

    submitit's own log lines ("submitit INFO (...) - Loading pickle: ..."), which it copies
    from the job's streams, and its separators are never the reason.
    """
    lines = [
        line.strip()
        for line in str(error).splitlines()
        if line.strip() and not _SUBMITIT_LOG.match(line.strip()) and set(line.strip()) != {"-"}
    ]
    # "*** JOB 12 ON node CANCELLED AT ... ***" (slurmstepd), "... not requeued because: ...".
    for marker in ("*** JOB", "because:", "Error:"):
        for line in reversed(lines):
            if marker in line:
                return line
    if "has not produced any output" in str(error):
        # The process died without a word from Python (os._exit, a crash in native code, the
        # out-of-memory killer): what it printed last, if anything, is the best clue.
        said = [line for line in lines if not line.startswith(_SUBMITIT_HEADERS)]
        ended = "its process ended without writing a result"
        return f"{ended}; its last output: {said[-1]}" if said else ended
    return lines[-1] if lines else type(error).__name__


#: A line that submitit's logger wrote into a job's streams.
_SUBMITIT_LOG = re.compile(r"submitit (DEBUG|INFO|WARNING|ERROR|CRITICAL) \(")
#: The lines submitit puts around a job's streams when the job wrote no result.
_SUBMITIT_HEADERS = (
    "Job ",
    "has not produced any output",
    "Error stream produced",
    "No error stream produced",
    "No output/error stream produced",
)


class LocalProcess(_SubmititBackend):
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
        progress: Show a progress bar (rich); ``None`` shows it only when stderr is a terminal.

    Example:
        >>> from assay_steps import Step
        >>> class Triple(Step):
        ...     def _run(self, value: int) -> int:
        ...         return 3 * value
        >>> infra = {"backend": "LocalProcess", "folder": "cache", "max_jobs": 2}
        >>> list(Triple(infra=infra).run_many([1, 2, 3]))  # doctest: +SKIP
        [3, 6, 9]

    """

    _CLUSTER: ClassVar[str] = "local"


class SubmititDebug(_SubmititBackend):
    """Run jobs inline through submitit's debug executor, to debug a job's code in place.

    Same fields and packing as :class:`LocalProcess`, but the jobs run in this process, one
    after the other, so a debugger or ``breakpoint()`` works inside them.

    Example:
        >>> from assay_steps import Step
        >>> class Negate(Step):
        ...     def _run(self, value: int) -> int:
        ...         return -value
        >>> list(Negate(infra={"backend": "SubmititDebug", "folder": "cache"}).run_many([1, 2]))
        [-1, -2]

    """

    _CLUSTER: ClassVar[str] = "debug"

    def _wait(
        self, jobs: list[submitit.Job[Any]], shards: list[list[ItemTask]], tasks: list[ItemTask]
    ) -> None:
        # Debug jobs run only when their result is asked for: ask, in order.
        for job in jobs:
            job.exception()
        super()._wait(jobs, shards, tasks)


class Slurm(_SubmititBackend):
    """Compute missing items in Slurm jobs (a job array), submitted with submitit.

    Raises :class:`~assay_backends.SlurmUnavailableError` when used on a machine without
    ``sbatch``.

    Args:
        constraint: ``--constraint`` of the jobs.
        partition: ``--partition``.
        account: ``--account``.
        qos: ``--qos``.
        additional_parameters: Further ``sbatch`` options, e.g. ``{"mail_type": "END"}``.
        use_srun: Start the job's process through ``srun``. ``None`` (the default) keeps
            submitit's default, ``srun``, which lets Slurm's warning signal before the time
            limit reach the job, so a time-out is reported within seconds. ``False`` runs
            Python directly in the batch script (for jobs that call ``srun`` themselves); a
            time limit then kills the job without warning.

    The fields of :class:`LocalProcess` apply too.

    Example:
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

    Example:
        >>> backend = Auto(folder="cache", partition="gpu")
        >>> backend._cluster() in ("slurm", "local")
        True

    """

    _CLUSTER: ClassVar[str] = ""

    def _cluster(self) -> str:
        return "slurm" if slurm_available() else "local"
