"""Drivers opening one results index at the same moment wait for each other."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from assay._index import ResultsIndex
from assay._marker import claim_folder
from assay._schema import INDEX_NAME, _retry_locked


def test_opening_an_index_another_process_is_writing_waits_instead_of_failing(
    tmp_path: Path,
) -> None:
    # Another connection holds a write lock on a database not yet in WAL mode: SQLite then
    # refuses the switch to WAL at once ("database is locked"), without its busy timeout.
    claim_folder(tmp_path, create=True)  # that driver marked the folder first
    holder = sqlite3.connect(tmp_path / INDEX_NAME, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, holder.rollback)
    release.start()
    started = time.monotonic()
    try:
        with ResultsIndex(tmp_path) as index:
            assert index.status_counts() == {}
    finally:
        release.join()
        holder.close()
    assert time.monotonic() - started >= 0.25  # it waited for the other writer


def test_only_a_locked_database_is_retried() -> None:
    attempts: list[int] = []

    def locked_twice() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise sqlite3.OperationalError("database is locked")

    _retry_locked(locked_twice)
    assert len(attempts) == 3

    def broken() -> None:
        attempts.append(1)
        raise sqlite3.OperationalError("disk I/O error")

    attempts.clear()
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        _retry_locked(broken)
    assert len(attempts) == 1
