"""Inside a job: run the shard, and answer the scheduler's warning that the time limit is near.

Slurm sends the warning signal (``USR2``, ``signal_delay_s`` seconds before the limit, or at a
preemption) to the job's processes. It never stops a run: a run that registered a checkpoint hook
([`Runtime.on_timeout`][assay_ops.Runtime.on_timeout]) has its state saved and the job is requeued,
at most ``max_requeues`` times; otherwise the warning is only reported (one line on stderr) and the
run goes on until the hard limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import submitit
from assay_ops import checkpoint_now
from assay_steps import ItemTask

from ._tasks import loads, run_shard, share

#: The signal submitit asks Slurm to send before a job's time limit (``--signal=USR2@...``).
WARNING_SIGNAL = signal.SIGUSR2
#: Exit code that makes submitit's local job controller start the job's tasks again.
LOCAL_REQUEUE_EXIT_CODE = 144


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """What a job needs to know of its backend's settings."""

    max_requeues: int = 3


def job_main(shard_: list[ItemTask], options: JobOptions) -> BaseException | None:
    """Run a shard inside a job; hand back (not raise) an exception escaping a task.

    Returned, the exception reaches the caller with its own type instead of submitit's
    ``FailedJobError`` wrapping its text. While the shard runs, the warning signal is
    answered by ``_Warning`` instead of submitit's handler, which would stop the run.
    """
    with _answering_the_warning(options):
        return _run(shard_)


def _run(shard_: list[ItemTask]) -> BaseException | None:
    try:
        run_shard(shard_)
    except Exception as error:
        return error
    return None


@contextlib.contextmanager
def _answering_the_warning(options: JobOptions) -> Iterator[None]:
    """Answer the warning signal with ``_Warning`` inside the block."""
    previous = signal.getsignal(WARNING_SIGNAL)
    # Only in a real job: submitit installed a handler (debug jobs run in the caller, perhaps
    # outside the main thread, where handlers cannot be set).
    answering = callable(previous) and not isinstance(previous, _Warning)
    if answering:
        signal.signal(WARNING_SIGNAL, _Warning(options))
    try:
        yield
    finally:
        # In a job, the warning stays answered until the process ends: submitit's handler,
        # back while the result is written, would end a job whose work is done.
        if answering and _environment() is None:
            signal.signal(WARNING_SIGNAL, previous)


def warning_ignored_until_handled(python: str) -> str:
    r"""Return a command that starts ``python`` with the warning signal ignored.

    Under a short time limit Slurm sends the warning at once (it may send it up to a minute
    before ``signal_delay_s``), possibly while the job's Python is still starting, before
    any handler is installed: the signal's default action would kill the job. A signal
    ignored by a shell stays ignored across ``exec``, until Python sets its handler.

    Examples:
        >>> warning_ignored_until_handled("/usr/bin/python3")
        '/bin/sh -c \'trap "" USR2; exec "$0" "$@"\' /usr/bin/python3'

    """
    return f"""/bin/sh -c 'trap "" {WARNING_SIGNAL.name[3:]}; exec "$0" "$@"' {python}"""


def job_main_pickled(payload: bytes, options: JobOptions) -> BaseException | None:
    """Unpickle a shard made by ``dumps`` and run this task's part."""
    # Answered before the shard is unpickled (which imports the steps and the user's code, a
    # second or more): submitit's own handler, set just before, ends a job at the warning.
    with _answering_the_warning(options):
        shard_: list[ItemTask] = loads(payload)
        rank, count = _task_rank()
        return job_main(share(shard_, rank, count), options)


def _environment() -> submitit.JobEnvironment | None:
    try:
        return submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (a debug job runs in the caller)
        return None


def _task_rank() -> tuple[int, int]:
    """Return this process's rank among the tasks of its job, and their number."""
    environment = _environment()
    if environment is None:
        return 0, 1
    return environment.global_rank, environment.num_tasks


class _Warning:
    """The handler of the warning signal: checkpoint and requeue, or carry on."""

    def __init__(self, options: JobOptions) -> None:
        self.options = options

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        environment = _environment()
        job_id = environment.job_id if environment is not None else "?"
        said = (
            f"assay: job {job_id} got the warning signal ({signal.Signals(signum).name}): its "
            "time limit (or a preemption) is near"
        )
        done = _requeue_count(environment)
        if done >= self.options.max_requeues:
            _say(
                f"{said}; it was requeued {done} time(s) already (max_requeues="
                f"{self.options.max_requeues}), so it goes on until its time limit"
            )
            return
        if not checkpoint_now():
            _say(
                f"{said}; no run registered a checkpoint hook (Runtime.on_timeout), so it goes "
                "on until its time limit"
            )
            return
        problem = _requeue(environment, done)
        if problem:
            _say(f"{said}; checkpoint saved, but {problem}: it goes on until its time limit")
        else:
            _say(
                f"{said}; checkpoint saved, job requeued (requeue {done + 1} of at most "
                f"{self.options.max_requeues})"
            )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _requeue_count(environment: submitit.JobEnvironment | None) -> int:
    """How many times this job was requeued already (by anyone, for any reason)."""
    if environment is not None and environment.cluster == "local":
        try:
            return int(_local_counter(environment).read_text() or 0)
        except (OSError, ValueError):
            return 0
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def _local_counter(environment: submitit.JobEnvironment) -> Path:
    return Path(environment.paths.folder) / "requeues"


def _requeue(environment: submitit.JobEnvironment | None, done: int) -> str:
    """Requeue this job; return why it could not be, or "" once it is requeued."""
    if environment is None:
        return "this process is not a job"
    if environment.cluster == "local":
        # submitit's local controller starts the tasks again when one exits with this code.
        _local_counter(environment).write_text(str(done + 1))
        sys.stdout.flush()
        sys.stderr.flush()
        _say(f"assay: local job {environment.job_id}: checkpoint saved, job restarted")
        os._exit(LOCAL_REQUEUE_EXIT_CODE)
    if environment.cluster != "slurm":
        return f"a {environment.cluster} job cannot be requeued"
    try:
        # The array task itself ("123_4"), not the whole array.
        subprocess.run(
            ["scontrol", "requeue", environment.job_id],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except subprocess.CalledProcessError as error:
        return f"'scontrol requeue {environment.job_id}' failed ({error.stderr.strip()})"
    except (OSError, subprocess.SubprocessError) as error:
        return f"'scontrol requeue {environment.job_id}' failed ({error})"
    return ""


def current_job(environ: Mapping[str, str] | None = None) -> tuple[str | None, int]:
    """Return the batch job this process runs in and the CPUs it was given.

    Read from the environment the scheduler sets (any job, not only those of a submitit
    backend: a run started inside an ``sbatch`` script belongs to its job too).

    Args:
        environ: The environment variables to read; defaults to this process's.

    Returns:
        ``(job, cpus)``. The job is what its logs are named after: a Slurm array task
        ``"<array job>_<task>"``, a Slurm job, or the process id of a submitit local job;
        ``None`` outside a job. CPUs are Slurm's ``--cpus-per-task`` (1 when not set).

    Examples:
        >>> env = {"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "9"}
        >>> current_job(env)
        ('7_3', 1)
        >>> current_job({"SLURM_JOB_ID": "80", "SLURM_CPUS_PER_TASK": "4"})
        ('80', 4)
        >>> current_job({})
        (None, 1)

    """
    if environ is None:
        environ = os.environ
    array, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    job = (
        f"{array}_{task}"
        if array and task
        else environ.get("SLURM_JOB_ID") or environ.get("SUBMITIT_LOCAL_JOB_ID") or None
    )
    cpus = environ.get("SLURM_CPUS_PER_TASK", "")
    return job, int(cpus) if cpus.isdigit() and int(cpus) >= 1 else 1


def current_job_logs() -> tuple[str, str] | None:
    """Return the stdout and stderr log paths of the submitit job this process runs in.

    Returns:
        ``(stdout, stderr)`` inside a Slurm or local job of a submitit backend; None outside
        one (and in a ``SubmititDebug`` job, which has no logs of its own).

    Examples:
        >>> current_job_logs() is None  # not inside a job here
        True

    """
    environment = _environment()
    if environment is None or environment.cluster not in {"slurm", "local"}:
        return None
    with contextlib.suppress(KeyError):  # no SUBMITIT_FOLDER: not started by submitit
        paths = environment.paths
        return str(paths.stdout), str(paths.stderr)
    return None


def job_logs(ref: Any) -> tuple[Path, Path] | None:
    """Return the stdout and stderr log paths of the job a job reference names.

    A job reference is what a submitit backend attached to the items it submitted (read
    with ``ItemTask.job_ref`` or ``LookupHandle``): keys ``cluster``, ``job_id``, ``folder``
    and ``host``. The paths are those of the job's first task; they may not exist (yet).

    Args:
        ref: A job reference.

    Returns:
        ``(stdout, stderr)``, or None when the reference names no job with logs (a debug
        job, a reference of another backend).

    Examples:
        >>> ref = {"cluster": "slurm", "job_id": "12_3", "folder": "/c/logs/%j", "host": "h"}
        >>> stdout, stderr = job_logs(ref)
        >>> stdout.as_posix(), stderr.as_posix()
        ('/c/logs/12_3/12_3_0_log.out', '/c/logs/12_3/12_3_0_log.err')

    """
    if not hasattr(ref, "get"):
        return None
    cluster, job_id, folder = ref.get("cluster"), ref.get("job_id"), ref.get("folder")
    if cluster not in {"slurm", "local"} or not job_id or not folder:
        return None
    paths = submitit.core.utils.JobPaths(str(folder), job_id=str(job_id), task_id=0)
    return paths.stdout, paths.stderr
