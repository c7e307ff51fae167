"""`assay cache explain`: what an experiment's and a step cache's results were computed from."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import xxhash
from assay_steps import Cached, Step

from assay import Experiment, grid
from assay._cli import main

OPERATION = """
from assay import operation


def square(x):
    return x * x


@operation
def measure(params, capture):
    capture.metric("y", square(params["x"]))
"""


def test_an_experiment_names_its_operation_helpers_and_runs_by_code(
    tmp_path: Path,
    write_module: Callable[..., ModuleType],
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = write_module(OPERATION, "explained_ops")
    folder = tmp_path / "exp"
    Experiment("sq", module.measure, grid(x=[1, 2, 3]), folder=folder, progress=False).run()
    assert main(["cache", "explain", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"operation: {module.__name__}:measure" in out
    (line,) = [line for line in out.splitlines() if f"{module.__name__}.square" in line]
    assert line.rstrip().endswith(f"{Path(module.__file__).name}:5")  # file:line of the helper
    assert f"{module.measure.code_hash}: 3 run(s) (the code now)" in out
    assert "step folder ExperimentRun-" in out


class Halve(Step):
    def _run(self, value: float) -> float:
        return value / 2


def test_a_step_cache_lists_its_code_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Halve(infra=Cached(folder=tmp_path)).run_many([1.0, 2.0])
    assert main(["cache", "explain", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "step folder Halve-" in out
    assert "current" in out
    assert "2 entries" in out
    assert "Halve._run" in out or "Halve" in out


def test_a_folder_that_holds_no_cache_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "explain", str(tmp_path)]) == 1
    assert "neither an experiment" in capsys.readouterr().err


def test_entries_are_counted_from_the_segments_and_the_older_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    step = Halve(infra=Cached(folder=tmp_path))
    list(step.run_many([1.0, 2.0, 3.0]))
    step.lookup(3.0).clear_cache()  # a clearing frame: the entry no longer counts
    Halve(infra=Cached(folder=tmp_path, mode="force")).run(1.0)  # a second frame, one entry
    old = step.lookup(5.0).paths.cache_folder  # an entry of the older layout counts too
    old.mkdir()
    payload = pickle.dumps(2.5)
    (old / "olditem.pkl").write_bytes(b"ASSAYP1\n" + xxhash.xxh3_128_digest(payload) + payload)
    assert main(["cache", "explain", str(tmp_path)]) == 0
    assert "3 entries" in capsys.readouterr().out
