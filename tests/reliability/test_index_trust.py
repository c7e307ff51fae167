"""The results index is checked, not trusted: damaged rows, misattributed records, artifacts.

Each row of the index carries a digest of its values (and of the experiment that wrote it);
reads check it and name the run and the folder, ``run()`` repairs the row from the run's
checksummed record in the cache without running it again. Rebuilding the index checks each
record's run id; an artifact is checked against its recorded SHA-256 when it is read.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from audit import count, metrics_by_run
from reliability_steps import computations

from assay import Experiment, Results, explicit
from assay._index import ResultsIndex
from assay._rows import DamagedIndexError, Outcome
from assay._runs import RunSpec
from assay._worker import ExperimentRun


def _experiment(folder: Path, log: Path) -> Experiment:
    return Experiment(
        "trusted",
        "reliability_steps:counted",
        explicit([{"i": i} for i in range(4)]),
        replicates=2,
        context={"side_effects": str(log)},
        folder=folder,
        progress=False,
    )


@pytest.fixture
def swept(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    folder, log = tmp_path / "exp", tmp_path / "computations.log"
    clean = metrics_by_run(_experiment(folder, log).run())
    return folder, log, clean


def _edit(folder: Path, sql: str, *args: Any) -> None:
    """Change the index behind assay's back, as a bad sector or another program would."""
    db = sqlite3.connect(folder / "index.sqlite")
    with db:
        db.execute(sql, args)
    db.close()


def _one_run(folder: Path) -> tuple[str, str]:
    db = sqlite3.connect(folder / "index.sqlite")
    run_id, metrics = db.execute("SELECT run_id, metrics FROM runs ORDER BY seq LIMIT 1").fetchone()
    db.close()
    return run_id, metrics


def test_a_changed_byte_of_a_metric_is_refused_then_repaired_from_the_cache(
    swept: tuple[Path, Path, dict[str, Any]],
) -> None:
    folder, log, clean = swept
    run_id, metrics = _one_run(folder)
    digit = next(i for i, c in enumerate(metrics) if c.isdigit() and c != "0" and i > 12)
    changed = metrics[:digit] + "0" + metrics[digit + 1 :]  # one byte of the value
    _edit(folder, "UPDATE runs SET metrics = ? WHERE run_id = ?", changed, run_id)
    count("corruption cases")
    with pytest.raises(DamagedIndexError, match=rf"{folder}.*run {run_id}"):
        Results.load(folder)
    before = computations(log)
    assert metrics_by_run(_experiment(folder, log).run()) == clean
    assert computations(log) == before  # repaired from the cache, nothing ran again
    assert metrics_by_run(Results.load(folder)) == clean


@pytest.mark.parametrize(
    ("column", "value"),
    [("params", '{"i": 3}'), ("status", "failed"), ("record", '{"run_id": "x"}')],
)
def test_any_changed_column_is_refused_then_repaired(
    swept: tuple[Path, Path, dict[str, Any]], column: str, value: str
) -> None:
    folder, log, clean = swept
    run_id, _ = _one_run(folder)
    _edit(folder, f"UPDATE runs SET {column} = ? WHERE run_id = ?", value, run_id)
    with pytest.raises(DamagedIndexError, match=rf"run {run_id}"):
        Results.load(folder).records()
    before = computations(log)
    repaired = _experiment(folder, log).run()
    assert metrics_by_run(repaired) == clean
    assert {r.run_id for r in repaired.records()} == set(clean)
    assert computations(log) == before


def test_rows_of_another_experiment_are_not_read_as_this_ones(
    swept: tuple[Path, Path, dict[str, Any]],
) -> None:
    folder, _, _ = swept
    db = sqlite3.connect(folder / "index.sqlite")
    (text,) = db.execute("SELECT value FROM meta WHERE key = 'experiment'").fetchone()
    db.close()
    other = {**json.loads(text), "config": "ExperimentRun-" + "1" * 32}
    _edit(folder, "UPDATE meta SET value = ? WHERE key = 'experiment'", json.dumps(other))
    with pytest.raises(DamagedIndexError, match="run "):
        Results.load(folder)


def test_rebuilding_checks_the_run_id_of_each_record(
    swept: tuple[Path, Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, log, clean = swept
    experiment = _experiment(folder, log)
    first, second = experiment.specs[0], experiment.specs[1]
    (other,) = Results.load(folder).filter(i=second.params["i"]).records()[1:]
    # A cache entry, well formed and checksummed, that holds the record of another run.
    (item,) = experiment._items([first])
    experiment.step.lookup(item).clear_cache()
    with monkeypatch.context() as patched:
        patched.setattr(
            ExperimentRun, "_run_batch", lambda self, values: (other.to_json() for _ in values)
        )
        experiment.step.run_many([item])
    assert json.loads(experiment.step.lookup(item).result())["run_id"] != first.run_id
    for path in folder.glob("index.sqlite*"):
        path.unlink()
    count("corruption cases")
    before = sum(computations(log).values())
    assert metrics_by_run(_experiment(folder, log).run()) == clean
    assert sum(computations(log).values()) == before + 1  # only the misattributed run again


def test_an_artifact_is_checked_against_its_recorded_sha256(
    swept: tuple[Path, Path, dict[str, Any]],
) -> None:
    folder, _, _ = swept
    results = Results.load(folder)
    record = results.records()[0]
    path = results.artifact(record.run_id, "draws.npy")
    assert record.artifacts[0]["path"] == str(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record.artifacts[0]["sha256"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path}.*sha256"):
        results.artifact(record.run_id, "draws.npy")
    with pytest.raises(KeyError, match=r"'nope'.*draws\.npy"):
        results.artifact(record.run_id, "nope")


def test_loading_a_sweep_of_20000_rows_stays_fast(tmp_path: Path) -> None:
    specs = [RunSpec.of({"lr": i / 1000, "opt": "adam"}, 0) for i in range(20_000)]
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.store(
            Outcome(s.run_id, "success", {"loss": i * 0.1, "acc": 0.5}, 1.0, None, "h", None)
            for i, s in enumerate(specs)
        )
    best = min(_timed(lambda: Results.load(tmp_path)) for _ in range(3))
    count("ms to load 20000 rows", round(best * 1000))
    assert best < 2.0


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
