"""The results index: an embedded SQLite database in the experiment folder.

Only the driver process writes it, from the records that workers wrote atomically into the
cache; workers never open it, so a sweep on a shared filesystem never has two writers.
Writes are batched in one transaction and the database runs in WAL mode, so a status query
of a 100,000-run sweep is a single indexed ``GROUP BY``.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ._runs import RunSpec

_F = TypeVar("_F", bound=Callable[..., Any])

#: File name of the index inside an experiment folder.
INDEX_NAME = "index.sqlite"

#: Statuses a run can have in the index; ``pending`` means planned but not finished.
STATUSES = ("pending", "success", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id    TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    params    TEXT NOT NULL,
    replicate INTEGER NOT NULL,
    status    TEXT NOT NULL,
    metrics   TEXT NOT NULL DEFAULT '{}',
    duration  REAL,
    error     TEXT,
    code_hash TEXT,
    record    TEXT,
    updated   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _names_the_file(method: _F) -> _F:
    """Re-raise SQLite's corruption errors naming the index file and the remedy.

    SQLite says only "database disk image is malformed" or "file is not a database"; the index
    is derived data, so the remedy is to delete it: the next ``run()`` rebuilds it from the cache.
    """

    @functools.wraps(method)
    def wrapper(self: ResultsIndex, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            if type(error) is not sqlite3.DatabaseError:  # locked, integrity...: not corruption
                raise
            raise sqlite3.DatabaseError(
                f"results index {str(self.path)!r} is corrupt ({error}); delete it and its "
                "-wal and -shm files, then run the experiment again: run() rebuilds the index "
                "from the cache without running anything again"
            ) from error

    return wrapper  # type: ignore[return-value]


_BUSY_SECONDS = 30.0


def _retry_locked(statement: Callable[[], object]) -> None:
    """Run ``statement``, retrying while another driver holds the database.

    Switching a new database to WAL needs it to itself for a moment, and SQLite answers
    "database is locked" at once, without waiting, when another process opens it then.
    """
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@dataclass(frozen=True)
class RunRow:
    """One run as the index holds it: what tables, filters and plots need.

    Attributes:
        run_id: the canonical run id.
        params: the run's parameters.
        replicate: the replicate index.
        status: ``pending``, ``success``, ``failed`` or ``cancelled``.
        metrics: the last value of each scalar metric.
        duration: seconds the operation ran, or None when it has not finished.
        error: ``"Type: message"`` of a failed run, else None.
        code_hash: the code hash of the operation that produced the row.

    """

    run_id: str
    params: dict[str, Any]
    replicate: int
    status: str
    metrics: dict[str, Any]
    duration: float | None
    error: str | None
    code_hash: str | None


@dataclass(frozen=True)
class Outcome:
    """The result of one run, as the driver writes it into the index."""

    run_id: str
    status: str
    metrics: dict[str, Any]
    duration: float | None
    error: str | None
    code_hash: str | None
    record: str | None


class ResultsIndex:
    """The SQLite index of one experiment folder.

    Example:
        >>> import tempfile
        >>> from assay._runs import RunSpec
        >>> with tempfile.TemporaryDirectory() as folder, ResultsIndex(folder) as index:
        ...     index.plan([RunSpec.of({"n": 1}, 0)])
        ...     index.status_counts()
        {'pending': 1}

    """

    @_names_the_file
    def __init__(self, folder: str | Path, *, create: bool = True) -> None:
        self.path = Path(folder) / INDEX_NAME
        if not create and not self.path.is_file():
            raise FileNotFoundError(
                f"folder {str(folder)!r} has no results index ({INDEX_NAME}); "
                "expected the folder of an experiment that has run"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: transactions are opened explicitly around each batch
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_SECONDS)
        _retry_locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        # WAL + NORMAL never corrupts; a crash can only lose the last batch, still in the cache
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # -------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> ResultsIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -------------------------------------------------------------- writes

    def _write(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(sql, rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @_names_the_file
    def plan(self, specs: Sequence[RunSpec]) -> None:
        """Add the runs not yet in the index as ``pending``; runs already there are kept."""
        first = self._db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM runs").fetchone()[0]
        now = time.time()
        self._write(
            "INSERT OR IGNORE INTO runs (run_id, seq, params, replicate, status, updated) "
            "VALUES (?, ?, ?, ?, 'pending', ?)",
            (
                (s.run_id, first + i, json.dumps(s.params), s.replicate, now)
                for i, s in enumerate(specs)
            ),
        )

    @_names_the_file
    def store(self, outcomes: Iterable[Outcome]) -> None:
        """Write finished runs (one transaction for the whole batch)."""
        now = time.time()
        self._write(
            "UPDATE runs SET status = ?, metrics = ?, duration = ?, error = ?, code_hash = ?, "
            "record = ?, updated = ? WHERE run_id = ?",
            (
                (
                    o.status,
                    json.dumps(o.metrics),
                    o.duration,
                    o.error,
                    o.code_hash,
                    o.record,
                    now,
                    o.run_id,
                )
                for o in outcomes
            ),
        )

    @_names_the_file
    def mark(self, run_ids: Iterable[str], status: str) -> None:
        """Set the status of the given runs (e.g. ``cancelled`` after Ctrl-C)."""
        if status not in STATUSES:
            raise ValueError(f"status = {status!r}; expected one of {', '.join(STATUSES)}")
        now = time.time()
        self._write(
            "UPDATE runs SET status = ?, updated = ? WHERE run_id = ?",
            ((status, now, run_id) for run_id in run_ids),
        )

    @_names_the_file
    def set_meta(self, key: str, value: Any) -> None:
        """Store one JSON value under ``key`` in the index's metadata."""
        self._write(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(key, json.dumps(value))]
        )

    # -------------------------------------------------------------- reads

    @_names_the_file
    def get_meta(self, key: str, default: Any = None) -> Any:
        """Return the JSON value stored under ``key``, or ``default``."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    @_names_the_file
    def status_counts(self) -> dict[str, int]:
        """Return the number of runs per status (statuses with no runs are left out)."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")
        return {status: count for status, count in rows}

    @_names_the_file
    def statuses(self) -> dict[str, str]:
        """Return the status of every run, by run id."""
        return dict(self._db.execute("SELECT run_id, status FROM runs"))

    @_names_the_file
    def other_code(self, code_hash: str) -> dict[str, str]:
        """Return the code hash of every finished run recorded with another (non-empty) one."""
        sql = (
            "SELECT run_id, code_hash FROM runs WHERE status IN ('success', 'failed') "
            "AND code_hash IS NOT NULL AND code_hash != '' AND code_hash != ?"
        )
        return dict(self._db.execute(sql, (code_hash,)))

    @_names_the_file
    def rows(self, run_ids: Iterable[str] | None = None) -> list[RunRow]:
        """Return the rows of the given runs (all when None), in planning order."""
        sql = (
            "SELECT run_id, params, replicate, status, metrics, duration, error, code_hash "
            "FROM runs ORDER BY seq"
        )
        wanted = None if run_ids is None else set(run_ids)
        out = []
        for rid, params, rep, status, metrics, duration, error, code_hash in self._db.execute(sql):
            if wanted is None or rid in wanted:
                out.append(
                    RunRow(
                        rid,
                        json.loads(params),
                        rep,
                        status,
                        json.loads(metrics),
                        duration,
                        error,
                        code_hash,
                    )
                )
        return out

    @_names_the_file
    def records(self, run_ids: Sequence[str]) -> list[str | None]:
        """Return the stored record JSON of each run (None for runs without a record)."""
        found: dict[str, str | None] = {}
        for start in range(0, len(run_ids), 500):  # stay under SQLite's parameter limit
            chunk = run_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT run_id, record FROM runs WHERE run_id IN ({marks})"
            found.update(self._db.execute(sql, chunk))
        return [found.get(rid) for rid in run_ids]
