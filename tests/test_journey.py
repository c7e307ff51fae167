"""What a new user does in the first hour, after the getting-started page, as regression tests.

Each test follows a step a researcher takes once the documented first sweep works: fix a bug
in the operation and retry the runs it failed, look at the results from the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from assay import Experiment, grid

BROKEN = """
from assay import operation


@operation
def sample_mean(params, seeds, capture):
    capture.metric("abs_error", abs(params["nosie"]))  # a typo: every run fails
"""

FIXED = BROKEN.replace('params["nosie"]', 'params["noise"]')


def _sweep(module: ModuleType, folder: Path) -> Experiment:
    return Experiment(
        "first-sweep",
        module.sample_mean,
        grid(noise=[0.5, 2.0]),
        replicates=2,
        folder=folder,
        progress=False,
    )


@pytest.mark.xfail(
    strict=True,
    reason="run(retry_failed=True) raises CodeChangedError when the failed runs were recorded "
    "with the code that was just fixed, though it was asked to rerun exactly those runs",
)
def test_retry_failed_after_fixing_the_operation_reruns_the_failed_runs(
    tmp_path: Path, write_module: Callable[..., ModuleType]
) -> None:
    folder = tmp_path / "runs"
    failed = _sweep(write_module(BROKEN, "journey_ops"), folder).run()
    assert failed.counts() == {"failed": 4}

    # the user fixes the typo and asks for the failed runs again, as the docs say to
    retried = _sweep(write_module(FIXED, "journey_ops"), folder).run(retry_failed=True)

    assert retried.counts() == {"success": 4}
    assert sorted(r["abs_error"] for r in retried.table()) == [0.5, 0.5, 2.0, 2.0]
