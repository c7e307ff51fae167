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


ECHO = """
from assay import operation


@operation
def echo(params, capture):
    capture.metric("v", 2.0 if isinstance(params["x"], float) else 1.0)
"""


def test_assay_results_tells_an_int_from_the_float_of_the_same_value(
    tmp_path: Path,
    write_module: Callable[..., ModuleType],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from assay._cli import main

    folder = str(tmp_path / "runs")
    ref = write_module(ECHO, "journey_echo").echo.ref
    assert main(["run", ref, "--grid", "x=1,1.0", "--folder", folder]) == 0
    capsys.readouterr()

    assert main(["results", folder, "--summary", "v", "--by", "x"]) == 0
    table = capsys.readouterr().out
    # the two data rows of the summary: x, mean, std, count
    rows = [line.strip("│ ").split("│") for line in table.splitlines() if line.startswith("│")]
    labels = {row[0].strip() for row in rows}
    assert len(rows) == 2
    assert len(labels) == 2, f"both points print as x = {labels}:\n{table}"
