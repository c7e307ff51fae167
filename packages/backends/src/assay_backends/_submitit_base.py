"""The base of the submitit backends: job fields, packing, submission, waiting, job references."""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import pydantic
import submitit
from assay_steps import Backend, ItemTask, StepPaths

from ._arrays import activation_lines, submit_all
from ._jobs import HOST, JobError, skip_running, wait_until_inactive
from ._progress import progress_enabled
from ._signals import JobOptions, warning_ignored_until_handled
from ._slurm_job import ControllerSlurmJob, with_controller_state
from ._snapshot import snapshot_code, snapshot_setup
from ._tasks import item_count, shard
from ._waiting import Submission

#: The most recent jobs submitted by this process, by (cluster, job id), so that
#: ``LookupHandle.job()`` hands back the very object (a debug job cannot be rebuilt from its
#: folder). Bounded, so that a long session does not keep every job alive.
_SUBMITTED: OrderedDict[tuple[str, str], submitit.Job[Any]] = OrderedDict()
_KEEP_JOBS = 4096
#: Fields that submitit knows under the same name, for every cluster.
GENERIC = ("timeout_min", "nodes", "tasks_per_node", "cpus_per_task", "gpus_per_node", "mem_gb")
#: Time limit of a local job whose backend sets none (submitit's own default is 2 minutes).
_LOCAL_NO_LIMIT_MIN = 60 * 24 * 365
#: Slurm's default time limit of submitit's jobs, in minutes (for messages).
_SUBMITIT_DEFAULT_MIN = 5


def _remember(cluster: str, job: submitit.Job[Any]) -> None:
    _SUBMITTED[(cluster, str(job.job_id))] = job
    while len(_SUBMITTED) > _KEEP_JOBS:
        _SUBMITTED.popitem(last=False)


class SubmititBackend(Backend):
    """Base of the submitit backends: packing, submission, waiting, job references."""

    #: Whether the backend runs items in batch jobs (submitted all at once, then waited for).
    submits_jobs: ClassVar[bool] = True
    #: Whether items run in a new Python interpreter (not the caller's process).
    new_interpreter: ClassVar[bool] = True

    job_name: str | None = None
    timeout_min: int | None = pydantic.Field(default=None, gt=0)
    nodes: int | None = pydantic.Field(default=None, gt=0)
    tasks_per_node: int | None = pydantic.Field(default=None, gt=0)
    cpus_per_task: int | None = pydantic.Field(default=None, gt=0)
    gpus_per_node: int | None = pydantic.Field(default=None, ge=0)
    mem_gb: float | None = pydantic.Field(default=None, gt=0)
    max_jobs: int = pydantic.Field(default=128, gt=0)
    min_items_per_job: int = pydantic.Field(default=1, gt=0)
    array_parallelism: int | None = pydantic.Field(default=None, gt=0)
    setup: list[str] = pydantic.Field(default_factory=list)
    conda_env: str | None = pydantic.Field(default=None, min_length=1)
    venv: str | None = pydantic.Field(default=None, min_length=1)
    code_snapshot: Path | None = None
    log_folder: Path | None = None
    signal_delay_s: int | None = pydantic.Field(default=None, ge=0)
    max_requeues: int = pydantic.Field(default=3, ge=0)
    progress: bool | None = None

    _CLUSTER: ClassVar[str] = ""

    def _cluster(self) -> str:
        return self._CLUSTER

    def _parameters(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in GENERIC if getattr(self, name) is not None}
        if self.job_name is not None:
            params["name"] = self.job_name
        return params

    def _setup_lines(self, tasks: list[ItemTask]) -> list[str]:
        """Shell lines run before each job: ``setup``, activations, the code snapshot."""
        if self.venv is not None and not (Path(self.venv) / "bin" / "activate").is_file():
            raise ValueError(
                f"venv={self.venv!r}: expected a virtual environment folder holding "
                "bin/activate, and there is none"
            )
        lines = [*self.setup, *activation_lines(self.conda_env, self.venv)]
        if self.code_snapshot is not None:
            caches = {task.paths.base_folder for task in tasks}
            exclude = [*caches, *([self.log_folder] if self.log_folder else [])]
            lines += snapshot_setup(snapshot_code(self.code_snapshot, exclude))
        return lines

    def _execute(self, tasks: list[ItemTask]) -> None:
        cluster = self._cluster()
        tasks, elsewhere = skip_running(tasks)
        try:
            if tasks:
                self._run_jobs(cluster, tasks)
        finally:
            # Items of jobs that other processes submitted: wait for those jobs, not twice.
            wait_until_inactive(elsewhere)

    def _run_jobs(self, cluster: str, tasks: list[ItemTask]) -> None:
        setup = self._setup_lines(tasks) if cluster != "debug" else []
        if self.code_snapshot is not None:
            # Jobs start in the snapshot: every cache path they are given must be absolute.
            tasks = [_absolute(task) for task in tasks]
        shards = shard(tasks, self.max_jobs, self.min_items_per_job)
        # Absolute: jobs may start in another working directory.
        root = (self.log_folder or tasks[0].paths.logs_folder).absolute()
        logs = root / "%j"
        activates = (self.conda_env or self.venv) and cluster in {"slurm", "local"}
        python: dict[str, str] = {}
        if cluster in {"slurm", "local"}:
            command = "python" if activates else shlex.quote(sys.executable)
            python[f"{cluster}_python"] = warning_ignored_until_handled(command)
        executor = submitit.AutoExecutor(folder=logs, cluster=cluster, **python)
        params = self._parameters()
        if cluster in {"slurm", "local"} and setup:
            params[f"{cluster}_setup"] = setup
        if cluster == "slurm":
            params.update(self._slurm_extras())
        if cluster == "local" and self.timeout_min is None:
            params["timeout_min"] = _LOCAL_NO_LIMIT_MIN
        executor.update_parameters(**params)
        if cluster == "local" and self.signal_delay_s is not None:
            # submitit's AutoExecutor does not pass this one on to local jobs.
            executor._executor.parameters["signal_delay_s"] = self.signal_delay_s
        options = JobOptions(max_requeues=self.max_requeues)
        try:
            jobs = submit_all(executor, cluster, shards, options, self.array_parallelism)
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
            ref: dict[str, Any] = {
                "cluster": cluster,
                "job_id": str(job.job_id),
                "folder": str(logs),
                "host": HOST,
            }
            if self.log_folder is not None:
                ref["log_folder"] = True  # not under the step folder: keep the path as it is
            for task in piece:
                task.attach_job(ref)
        name = f"{type(tasks[0].step).__name__} ({type(self).__name__}, {len(jobs)} jobs)"
        limit = str(self.timeout_min or (_SUBMITIT_DEFAULT_MIN if cluster == "slurm" else ""))
        try:
            self._before_wait(jobs)
            Submission(
                name, jobs, shards, time_limit=limit, progress=progress_enabled(self.progress)
            ).wait()
        finally:
            _drop_template_folder(logs)

    def _slurm_extras(self) -> dict[str, Any]:
        """Slurm options the fields imply: the warning's delay, and that jobs may be requeued."""
        extras: dict[str, Any] = {}
        if self.signal_delay_s is not None:
            extras["slurm_signal_delay_s"] = self.signal_delay_s
        given = dict(getattr(self, "additional_parameters", None) or {})
        if not {"requeue", "no_requeue", "no-requeue"} & set(given):
            # A checkpoint requeues the job, and Slurm requeues it after a node failure.
            extras["slurm_additional_parameters"] = {"requeue": True, **given}
        return extras

    def _before_wait(self, jobs: list[submitit.Job[Any]]) -> None:
        """Do what the jobs need once submitted, before they are waited for (nothing here)."""

    def _refused(self, shards: list[list[ItemTask]], error: BaseException) -> JobError:
        """Return the error for a submission of ``shards`` that the scheduler refused."""
        tasks = [task for piece in shards for task in piece]
        steps = ", ".join(sorted({type(task.step).__name__ for task in tasks}))
        said = [line.strip() for line in str(error).splitlines() if line.strip()]
        names = (
            *("job_name", *GENERIC, "constraint", "partition", "account", "qos"),
            *("additional_parameters", "use_srun", "array_parallelism"),
        )
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in names
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
        if ref.get("log_folder") and ref.get("folder"):
            folder = str(ref["folder"])  # a log folder of the user's choice
            logs = Path(folder).parent
        else:
            # The logs are in this step folder, wherever it is now: the folder recorded at
            # submission is where the cache was then (it may have been moved or copied since).
            logs = paths.logs_folder.absolute()
            folder = str(logs / "%j")
        own = _SUBMITTED.get((cluster, job_id))
        if own is not None and Path(own.paths.folder).parent == logs:
            return own
        if cluster == "slurm":
            return ControllerSlurmJob(folder=folder, job_id=job_id)
        if cluster == "local":
            return submitit.LocalJob(folder=folder, job_id=job_id)
        return None  # a debug job lives only in the process that ran it


def _absolute(task: ItemTask) -> ItemTask:
    paths = dataclasses.replace(task.paths, base_folder=task.paths.base_folder.absolute())
    return dataclasses.replace(task, paths=paths)


def _drop_template_folder(folder: Path) -> None:
    """Remove the empty folder named by the template itself (``logs/%j``), if any.

    submitit's local job controller makes its folder argument, the unformatted template,
    before it makes the job's own folder (``logs/<job id>``), which keeps the logs.
    """
    with contextlib.suppress(OSError):  # absent, or not empty: then it is not ours to remove
        folder.rmdir()
