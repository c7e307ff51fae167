"""Steps and helpers shared by the backends' tests.

The steps travel to jobs by value (``cloudpickle``), as if defined in a notebook: a job's new
interpreter does not have this folder on its import path.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
from assay_steps import Step

cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: The ``in_thread`` fixture (conftest.py): work started in a thread, and its outcome.
InThread = Callable[[Callable[[], Any]], tuple[threading.Thread, dict[str, Any]]]


class HoldsWhileFlag(Step):
    """Returns the input once ``flag`` is gone (the flag is not part of the result)."""

    flag: Path

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        # A control file the test creates and deletes: not an input of the results (a Path
        # field is otherwise keyed by the content of its file).
        return ["flag"]

    def _run(self, value: int) -> int:
        while self.flag.exists():
            time.sleep(0.05)
        return value


class SlowWhileFlag(HoldsWhileFlag):
    """Returns the input + 100 once ``flag`` is gone."""

    def _run(self, value: int) -> int:
        return super()._run(value) + 100


def job_ids(step_folder: Path) -> set[str]:
    """Distinct job ids attached to items (one json per task under jobs/)."""
    return {
        json.loads(p.read_text())["ref"]["job_id"] for p in step_folder.glob("code-*/jobs/*.json")
    }


def slurm(folder: Path, **fields: Any) -> dict[str, Any]:
    """The ``infra=`` dict of the Slurm backend on ``folder``."""
    return {"backend": "Slurm", "folder": folder, **fields}


class Terminal(io.StringIO):
    """A stream that says it is a terminal, where progress bars are drawn."""

    def isatty(self) -> bool:
        return True
