"""An experiment folder or a cache moved to another path (laptop -> cluster -> laptop).

Researchers run a sweep in one place, then `mv`, `cp -a` or `rsync -a` the folder somewhere
else and carry on from there. Nothing that assay stores may tie the folder to its old path:
keys, records and job references must keep working at the new place.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, Results, Step, grid

OPS = """
from assay import operation


@operation
def with_artifact(params, capture):
    capture.artifact("value.txt", f"x={params['x']}")
    capture.metric("y", 2 * params["x"])
"""


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    source = tmp_path / "src"
    source.mkdir()
    (source / "move_ops.py").write_text(textwrap.dedent(OPS))
    monkeypatch.syspath_prepend(str(source))
    sys.modules.pop("move_ops", None)
    return importlib.import_module("move_ops")


def _sweep(folder: Path, ops: Any) -> Experiment:
    return Experiment(
        "moved", ops.with_artifact, grid(x=[1, 2]), replicates=2, folder=folder, progress=False
    )


def test_a_moved_experiment_resumes_from_its_cache(tmp_path: Path, ops: Any) -> None:
    laptop, cluster = tmp_path / "laptop" / "exp", tmp_path / "scratch" / "exp"
    first = _sweep(laptop, ops).run()
    shutil.move(laptop, cluster)
    again = _sweep(cluster, ops)
    moved = again.run()
    assert again.last_summary is not None
    assert again.last_summary.skipped == 4
    assert [r.metrics for r in moved] == [r.metrics for r in first]


def test_a_cache_copied_alone_rebuilds_the_index_without_running(tmp_path: Path, ops: Any) -> None:
    laptop, cluster = tmp_path / "laptop" / "exp", tmp_path / "scratch" / "exp"
    _sweep(laptop, ops).run()
    cluster.mkdir(parents=True)
    shutil.copytree(laptop / "cache", cluster / "cache")
    again = _sweep(cluster, ops)
    again.run()
    assert again.last_summary is not None
    # every run is served by the copied cache: the keys do not depend on the folder's path
    assert again.last_summary.cached == 4


def test_records_of_a_moved_experiment_point_into_the_new_folder(tmp_path: Path, ops: Any) -> None:
    laptop, cluster = tmp_path / "laptop" / "exp", tmp_path / "scratch" / "exp"
    _sweep(laptop, ops).run()
    shutil.move(laptop, cluster)
    for record in Results.load(cluster).records():
        run_dir = cluster.resolve() / "runs" / record.run_id
        assert record.runtime["run_dir"] == str(run_dir)
        (artifact,) = record.artifacts
        path = Path(artifact["path"])
        assert path == run_dir / "artifacts" / "value.txt"
        assert path.read_text() == f"x={record.params['x']}"


class Double(Step):
    """A step whose items run in LocalProcess jobs."""

    def _run(self, value: int) -> int:
        return 2 * value


@pytest.mark.slow
def test_the_job_of_a_moved_cache_reads_its_logs_from_the_new_folder(tmp_path: Path) -> None:
    laptop, cluster = tmp_path / "laptop", tmp_path / "scratch"
    step = Double(infra={"backend": "LocalProcess", "folder": laptop})
    assert list(step.run_many([1])) == [2]
    shutil.move(laptop, cluster)
    handle = Double(infra={"backend": "LocalProcess", "folder": cluster}).lookup(1)
    assert handle.status == "success"
    job = handle.job()
    assert job is not None
    assert Path(job.paths.stdout).is_relative_to(cluster)
    assert Path(job.paths.stdout).exists()
