"""Submitting shards: as few job arrays as Slurm's ``MaxArraySize`` allows, all at once."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from assay_steps import ItemTask

from ._signals import JobOptions, job_main_pickled
from ._states import cancel, max_array_size
from ._tasks import dumps


def array_limit(cluster: str) -> int:
    """Return how many jobs one submission of ``cluster`` may hold (tasks of one array)."""
    if cluster == "slurm":
        # Indices run from 0 to MaxArraySize - 1; one less keeps clear of that edge.
        return max(1, max_array_size() - 1)
    return 1 << 30  # local and debug jobs are separate submissions anyway


def chunks(shards: Sequence[list[ItemTask]], size: int) -> list[Sequence[list[ItemTask]]]:
    """Cut ``shards`` into consecutive groups of at most ``size``.

    Examples:
        >>> [len(group) for group in chunks([[]] * 5, 2)]
        [2, 2, 1]

    """
    return [shards[start : start + size] for start in range(0, len(shards), size)]


def submit_all(
    executor: submitit.AutoExecutor,
    cluster: str,
    shards: Sequence[list[ItemTask]],
    options: JobOptions,
    array_parallelism: int | None,
) -> list[submitit.Job[Any]]:
    """Submit one job per shard, as job arrays of at most ``MaxArraySize - 1`` tasks.

    ``array_parallelism`` throttles how many tasks of each array run at once (``None``: no
    throttle). If Slurm refuses a later array, the jobs already submitted are cancelled and
    the refusal (``submitit``'s ``FailedJobError``) propagates.
    """
    jobs: list[submitit.Job[Any]] = []
    try:
        for group in chunks(shards, array_limit(cluster)):
            if cluster == "slurm":
                executor.update_parameters(slurm_array_parallelism=array_parallelism or len(group))
            # clean_env: a submission from inside a Slurm job must not inherit its settings.
            with submitit.helpers.clean_env(), executor.batch():
                submitted = [
                    executor.submit(job_main_pickled, dumps(piece), options) for piece in group
                ]
            # Only now: inside the batch, the jobs are placeholders without an id.
            jobs += submitted
    except BaseException:
        if cluster == "slurm":
            cancel(str(job.job_id) for job in jobs)
        else:
            for job in jobs:
                job.cancel(check=False)
        raise
    return jobs


def activation_lines(conda_env: str | None, venv: str | None) -> list[str]:
    """Return the shell lines that activate a conda environment and/or a virtual environment.

    Examples:
        >>> activation_lines("torch", "/opt/env")
        ['eval "$(conda shell.posix hook)"', 'conda activate torch', '. /opt/env/bin/activate']

    """
    lines: list[str] = []
    if conda_env is not None:
        lines += ['eval "$(conda shell.posix hook)"', f"conda activate {shlex.quote(conda_env)}"]
    if venv is not None:
        # ".", not "source": local jobs run their setup with /bin/sh, which may be dash.
        lines.append(f". {shlex.quote(str(Path(venv) / 'bin' / 'activate'))}")
    return lines
