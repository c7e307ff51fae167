"""The reference library's estimate_pi example runs as written, with assay_ops names."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "estimate_pi.py"


def run_example(capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    return [line.split() for line in lines[1:]]


def test_estimate_pi_runs_and_is_reproducible(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_example(capsys)
    assert len(rows) == 9
    assert {row[3] for row in rows} == {"success"}
    estimates = {(int(n), int(r)): float(pi) for n, r, pi, _ in rows}
    # Replicates draw different samples, so their estimates differ.
    assert len({estimates[(1000, r)] for r in range(3)}) == 3
    # 100,000 samples: the standard error is about 0.005.
    assert all(abs(estimates[(100_000, r)] - math.pi) < 0.03 for r in range(3))
    # Running it again gives the very same numbers.
    assert run_example(capsys) == rows


def test_the_operation_can_be_used_directly() -> None:
    namespace = runpy.run_path(str(EXAMPLE))
    record = namespace["estimate_pi"].run(params={"n_samples": 500})
    assert record.status == "success"
    assert 2.5 < record.metric("pi_estimate") < 3.8
