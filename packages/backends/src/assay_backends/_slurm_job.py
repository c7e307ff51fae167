"""A submitit Slurm job that asks the controller for its state while accounting lags behind."""

from __future__ import annotations

from typing import Any

import submitit

from ._jobs import controller_state


class ControllerSlurmJob(submitit.SlurmJob[Any]):
    """submitit's ``SlurmJob``, whose ``state`` falls back to the controller.

    submitit asks only ``sacct``, which learns about the tasks of a job array seconds after
    they started or ended (until then it lists the array as one record, or nothing), and
    submitit asks it less and less often. In that window submitit says ``UNKNOWN`` for a job
    that the controller (``squeue``, which keeps ended jobs for ``MinJobAge``, 300 s by
    default) knows well.
    """

    def __repr__(self) -> str:
        # Shown to users as what it is to them: a Slurm job (the class is an implementation
        # detail of how its state is read).
        return f'SlurmJob<job_id={self.job_id}, task_id={self.task_id}, state="{self.state}">'

    @property
    def state(self) -> str:
        """State of the job: accounting's, else the controller's, else ``UNKNOWN``."""
        state = str(super().state)
        if state != "UNKNOWN":
            return state
        return controller_state(self.job_id) or state


def with_controller_state(job: submitit.Job[Any], folder: str) -> ControllerSlurmJob:
    """Return ``job`` as a ``ControllerSlurmJob``: the same job, whose state does not lag.

    Args:
        job: A Slurm job that submitit made.
        folder: The folder ``job`` was submitted from (a ``%j`` template).

    """
    return ControllerSlurmJob(folder=folder, job_id=str(job.job_id), tasks=range(job.num_tasks))
