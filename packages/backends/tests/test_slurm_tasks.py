"""Slurm jobs of several tasks (``tasks_per_node``): every task runs the job's items."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cloudpickle
import pytest
from assay_steps import Step

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


class TaskOf(Step):
    """Returns the input with the Slurm task (``SLURM_PROCID``) that computed it."""

    def _run(self, value: int) -> tuple[int, str | None]:
        return value, os.environ.get("SLURM_PROCID")


def test_a_job_of_two_tasks_computes_each_item_once_and_returns(tmp_path: Path) -> None:
    infra = {"backend": "Slurm", "folder": tmp_path, "tasks_per_node": 2, "max_jobs": 1}
    step = TaskOf(infra=infra)
    results = list(step.run_many([1, 2, 3]))
    assert [value for value, _ in results] == [1, 2, 3]
    # Each task runs the job's items; their claims let only one compute each.
    assert {task for _, task in results} <= {"0", "1"}
    assert all(step.lookup(value).status == "success" for value in (1, 2, 3))


class Fails(Step):
    def _run(self, value: int) -> int:
        if value == 2:
            raise ZeroDivisionError(f"item {value} divides by zero")
        return value


def test_an_item_error_in_a_job_of_two_tasks_surfaces_and_the_others_are_kept(
    tmp_path: Path,
) -> None:
    infra = {"backend": "Slurm", "folder": tmp_path, "tasks_per_node": 2, "max_jobs": 1}
    step = Fails(infra=infra)
    with pytest.raises(ZeroDivisionError, match="item 2 divides by zero"):
        list(step.run_many([1, 2, 3]))
    assert [step.lookup(value).status for value in (1, 2, 3)] == ["success", "error", "success"]
