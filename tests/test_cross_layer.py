"""Promises that span layers: scopes, seeds and contexts reach the items on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from assay_backends import ProcessPool
from assay_scope import auto_param, param_scope
from assay_steps import Step


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_step_from_a_script_calling_auto_param_runs_on_a_process_pool(
    tmp_path: Path, start_method: Any
) -> None:
    # Defined inside the test, so they travel by value, as a script's or a notebook's do.
    @auto_param("model")
    def width(w: int = 8) -> int:
        return w

    class Width(Step):
        scale: int = 1

        def _run(self, value: int) -> int:
            with param_scope(**{"model.w": value}):
                return width() * self.scale

    infra = ProcessPool(folder=tmp_path, max_jobs=2, start_method=start_method, progress=False)
    assert list(Width(scale=10, infra=infra).run_many([1, 2, 3])) == [10, 20, 30]
