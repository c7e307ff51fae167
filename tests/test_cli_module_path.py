"""``assay run module:operation`` finds the module in the folder it is run from.

A console script, unlike ``python -m``, does not put the current folder on ``sys.path``; the
command adds it, as uvicorn and celery do, so that ``assay run train:sweep`` next to
``train.py`` works like ``python -c "import train"`` there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

OPERATION = """
from assay import operation


@operation
def double(params, capture):
    capture.metric("y", params["x"] * 2)
"""


def _assay_command() -> list[str]:
    """The installed ``assay`` script, or its equivalent without the current folder on the path."""
    script = Path(sys.executable).parent / "assay"
    if script.is_file():
        return [str(script)]
    # -I: no current folder (and no PYTHONPATH) on sys.path, as for a console script.
    return [sys.executable, "-I", "-c", "import sys; from assay._cli import main; sys.exit(main())"]


@pytest.mark.parametrize("backend", ["inline", "process"])
def test_run_imports_the_operation_from_the_current_folder(tmp_path: Path, backend: str) -> None:
    (tmp_path / "local_ops.py").write_text(OPERATION)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [*_assay_command(), "run", "local_ops:double", "--grid", "x=1,2"]
    command += ["--backend", backend, "--folder", "runs"]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results = subprocess.run(
        [*_assay_command(), "results", "runs", "--csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert results.returncode == 0, results.stderr
    rows = results.stdout.strip().splitlines()
    assert len(rows) == 3  # a header and one row per run
    assert all(",success," in row for row in rows[1:]), rows
