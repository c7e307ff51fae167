"""Stable identity across releases: golden run ids and experiment uids, and a folder written by
an older uid encoding kept (not refused, not recomputed) when its experiment is the same."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, grid
from assay._identity import FolderConflictError
from assay._runs import RunSpec

OPERATION = "assay._demo:estimate_pi"


@pytest.mark.parametrize(
    ("params", "replicate", "run_id"),
    [
        ({"n_samples": 100}, 0, "99691d261373cf9bd20b"),
        ({"n_samples": 100}, 1, "b893686dd4059ab83628"),
        ({"n_samples": 100.0}, 0, "1c624e5b8684accbc46f"),
        ({"lr": 0.1, "opt": "adam"}, 3, "37f124e3c633a35031c1"),
    ],
)
def test_run_ids_are_pinned(params: dict[str, object], replicate: int, run_id: str) -> None:
    assert RunSpec.of(params, replicate).run_id == run_id


def identity(folder: Path, new: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read (or overwrite) the identity stored in an experiment folder's index."""
    with sqlite3.connect(folder / "index.sqlite") as db:
        if new is not None:
            db.execute("UPDATE meta SET value = ? WHERE key = 'experiment'", (json.dumps(new),))
        (text,) = db.execute("SELECT value FROM meta WHERE key = 'experiment'").fetchone()
    found: dict[str, Any] = json.loads(text)
    return found


def sweep(folder: Path) -> Experiment:
    experiment = Experiment(
        "pi", OPERATION, grid(n_samples=[10, 20]), folder=folder, progress=False
    )
    experiment.run()
    return experiment


def test_the_experiment_uid_is_pinned(tmp_path: Path) -> None:
    experiment = Experiment("pi", OPERATION, grid(n_samples=[10]), folder=tmp_path, progress=False)
    assert experiment._config == "ExperimentRun-e20a882f5f493fba2fda5d7f8e5dd093"


def test_a_folder_of_an_older_encoding_keeps_its_runs(tmp_path: Path) -> None:
    first = sweep(tmp_path)
    # As an older assay left it: another config uid, no encoding in the stored identity.
    stored = identity(tmp_path)
    assert stored["config"] == first._config
    del stored["encoding"]
    identity(tmp_path, {**stored, "config": "ExperimentRun-" + "0" * 32})
    again = sweep(tmp_path)
    assert again.last_summary is not None
    assert again.last_summary.skipped == 2  # kept from the index: nothing ran again


def test_an_older_folder_of_another_experiment_is_still_refused(tmp_path: Path) -> None:
    sweep(tmp_path)
    stored = identity(tmp_path)
    del stored["encoding"]
    identity(tmp_path, {**stored, "seed": stored["seed"] + 1, "config": "x"})
    with pytest.raises(FolderConflictError, match="seed"):
        sweep(tmp_path)
