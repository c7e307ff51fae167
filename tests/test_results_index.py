"""The SQLite results index: planning, storing, status queries, metadata."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from assay._index import ResultsIndex
from assay._rows import Outcome
from assay._runs import RunSpec, plan
from assay._schema import INDEX_NAME
from assay._space import grid


def _outcome(spec: RunSpec, status: str = "success", value: float = 1.0) -> Outcome:
    return Outcome(spec.run_id, status, {"m": value}, 0.5, None, "h1", '{"x": 1}')


def test_plan_adds_pending_runs_once(tmp_path: Path) -> None:
    specs = plan(grid(a=[1, 2, 3]), replicates=2, seed=0)
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.plan(specs)  # planning again keeps what is there
        assert index.status_counts() == {"pending": 6}
        rows = index.rows()
    assert [r.run_id for r in rows] == [s.run_id for s in specs]
    assert rows[0].params == {"a": 1}
    assert (tmp_path / INDEX_NAME).is_file()


def test_store_and_mark_update_status_and_keep_order(tmp_path: Path) -> None:
    specs = plan(grid(a=[1, 2]), replicates=2, seed=0)
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.store([_outcome(specs[0], value=3.0), _outcome(specs[1], "failed")])
        index.mark([specs[2].run_id], "cancelled")
        assert index.status_counts() == {"success": 1, "failed": 1, "cancelled": 1, "pending": 1}
        row = index.rows([specs[0].run_id])[0]
        assert row.metrics == {"m": 3.0}
        assert row.duration == 0.5
        assert row.code_hash == "h1"
        assert index.records([specs[0].run_id, specs[3].run_id]) == ['{"x": 1}', None]
        with pytest.raises(ValueError, match="status = 'done'"):
            index.mark([specs[0].run_id], "done")


def test_index_survives_reopening_and_is_in_wal_mode(tmp_path: Path) -> None:
    specs = plan(grid(a=[1]), replicates=1, seed=0)
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.set_meta("operation", {"ref": "m:f"})
    with ResultsIndex(tmp_path) as index:
        assert index.get_meta("operation") == {"ref": "m:f"}
        assert index.get_meta("missing", 5) == 5
        assert index.statuses() == {specs[0].run_id: "pending"}
    mode = sqlite3.connect(tmp_path / INDEX_NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_opening_a_folder_without_index_for_reading_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="has no results index"):
        ResultsIndex(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()


def test_a_failed_batch_writes_nothing(tmp_path: Path) -> None:
    specs = plan(grid(a=[1, 2]), replicates=1, seed=0)

    class Boom(Exception):
        pass

    def outcomes():  # type: ignore[no-untyped-def]
        yield _outcome(specs[0])
        raise Boom

    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        with pytest.raises(Boom):
            index.store(outcomes())
        assert index.status_counts() == {"pending": 2}


def test_large_index_status_counts(tmp_path: Path) -> None:
    specs = plan(grid(a=list(range(2000))), replicates=5, seed=0)
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.store(_outcome(s) for s in specs[::2])
        assert index.status_counts() == {"success": 5000, "pending": 5000}
