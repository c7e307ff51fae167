"""The SQLite schema of the results index, its migrations, and opening it to read only.

The schema is created if missing and older indexes are brought up to it in place: the digest
and job columns are added, and the change log (triggers noting the rows any program writes) is
installed once. A reader opens the index without changing its schema, journal mode or rows.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from ._infrastructure import index_storage_error

#: File name of the index inside an experiment folder.
INDEX_NAME = "index.sqlite"

#: Statuses a run can have in the index; ``pending`` means planned but not finished,
#: ``timeout`` that its job reached its time limit before the run ended, ``pruned`` that it
#: stopped early when its pruner said so (its metrics so far are kept; not a failure).
STATUSES = ("pending", "success", "failed", "timeout", "cancelled", "pruned")

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
    updated   REAL NOT NULL,
    digest    TEXT,
    record_digest TEXT,
    job       TEXT
);
CREATE INDEX IF NOT EXISTS runs_state ON runs (status, code_hash);
CREATE INDEX IF NOT EXISTS runs_seq ON runs (seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
DROP INDEX IF EXISTS runs_status;
"""
# runs_state counts the runs by status and finds the unfinished ones and those of another code
# hash (it replaces the index of status alone of older versions); runs_seq reads the rows in
# planning order without sorting them. Both are cheap to keep: a run's key in them is written
# near the key written before it, unlike the run id's.

#: Meta key of the digest of the last sweep whose every run is in the index (see ``planned``).
_PLANNED = "planned_sweep"

#: The change log: SQLite's triggers note every row inserted or updated, by any program (another
#: tool, an older assay); assay removes the entries of its own writes as it commits them, so
#: what is left is what ``repair`` checks. Deleting a row, or renaming one, voids the fact that
#: a sweep's runs are all in the index.
_CHANGE_LOG = (
    "CREATE TABLE runs_changed (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL)",
    "CREATE TRIGGER runs_inserted AFTER INSERT ON runs "
    "BEGIN INSERT INTO runs_changed (run_id) VALUES (NEW.run_id); END",
    "CREATE TRIGGER runs_updated AFTER UPDATE ON runs "
    "BEGIN INSERT INTO runs_changed (run_id) VALUES (NEW.run_id); END",
    f"CREATE TRIGGER runs_deleted AFTER DELETE ON runs "
    f"BEGIN DELETE FROM meta WHERE key = '{_PLANNED}'; END",
    f"CREATE TRIGGER runs_renamed AFTER UPDATE OF run_id ON runs "
    f"BEGIN DELETE FROM meta WHERE key = '{_PLANNED}'; END",
)

#: Rows noted by the change log (``_CHANGE_LOG``): those ``claim`` and ``repair`` look at.
_CHANGED = "run_id IN (SELECT run_id FROM runs_changed)"


def _add_digest_columns(db: sqlite3.Connection) -> None:
    """Give an index of an older assay its digest and job columns (rows adopted by claim)."""
    if _has_digests(db) and _has_job(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        for column in ("digest", "record_digest", "job"):
            if column not in columns:  # another driver may have just added it
                db.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _has_digests(db: sqlite3.Connection) -> bool:
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    return {"digest", "record_digest"} <= columns


def _has_job(db: sqlite3.Connection) -> bool:
    return any(row[1] == "job" for row in db.execute("PRAGMA table_info(runs)"))


def _track_changes(db: sqlite3.Connection) -> None:
    """Give the index its change log (see ``_CHANGE_LOG``), once.

    The rows of an index made before the log are all logged as changed: the next
    ``repair`` checks each of them once, as every run of an older assay did.
    """
    if _has_change_log(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if not _has_change_log(db):  # another driver may have just made it
            for statement in _CHANGE_LOG:
                db.execute(statement)
            db.execute("INSERT INTO runs_changed (run_id) SELECT run_id FROM runs")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _has_change_log(db: sqlite3.Connection) -> bool:
    sql = "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('runs_changed', 'runs_renamed')"
    return bool(db.execute(sql).fetchone()[0] == 2)


def _file_error(error: sqlite3.DatabaseError, path: Path) -> Exception | None:
    """Return the error to raise for SQLite's ``error`` on ``path``; None to raise it as is."""
    full = index_storage_error(error, path)  # "database or disk is full"
    if full is not None:
        return full
    if type(error) is not sqlite3.DatabaseError:  # locked, integrity...: not corruption
        return None
    return sqlite3.DatabaseError(
        f"results index {str(path)!r} is corrupt ({error}); delete it and its "
        "-wal and -shm files, then run the experiment again: run() rebuilds the index "
        "from the cache without running anything again"
    )


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


def _read_only_uri(index: Path, header: bytes) -> str:
    """Return the URI that opens ``index`` read-only, creating and changing no file.

    SQLite opens a database in WAL mode read-only only where it can create the -wal and -shm
    files, or when they are already there (a writer may be live: it is opened to see it), or
    as immutable (nothing else writes it: an archive, a read-only file system).
    """
    wal = len(header) > 18 and header[18] == 2
    live = all(Path(f"{index}-{end}").exists() for end in ("wal", "shm"))
    return index.resolve().as_uri() + ("?mode=ro" if wal and live else "?mode=ro&immutable=1")


def _open_read_only(index: Path) -> sqlite3.Connection:
    """Open the results index to read it only: schema, journal mode and rows are left as is.

    Where the folder can be written, the index is opened as a writer opens it, with writes
    refused (SQLite removes its log files when the last connection closes); elsewhere (a
    read-only file system, no write permission) through ``_read_only_uri``.

    Raises:
        sqlite3.OperationalError: the index cannot be opened or read; the message names it.

    """
    writable = os.access(index, os.W_OK) and os.access(index.parent, os.W_OK)
    try:
        if writable:
            uri = index.resolve().as_uri()
        else:
            with index.open("rb") as file:
                uri = _read_only_uri(index, file.read(100))
        db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_SECONDS)
    except (OSError, sqlite3.Error) as error:
        raise _unopenable(index, error) from error
    try:
        if writable:
            db.execute("PRAGMA query_only = ON")
        # SQLite opens the file on first use. A driver killed after creating the file and
        # before writing its tables recorded nothing: the folder reads as holding no runs.
        if not _has_tables(db):
            db.close()
            return _empty_index()
    except sqlite3.Error as error:
        db.close()
        if type(error) is sqlite3.DatabaseError:  # corruption: reported as such
            raise
        raise _unopenable(index, error) from error
    return db


def _has_tables(db: sqlite3.Connection) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'")
    return found.fetchone() is not None


def _empty_index() -> sqlite3.Connection:
    """Return an index holding no runs, in memory: what a reader sees of one never written."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(_SCHEMA)
    return db


def _unopenable(index: Path, error: BaseException) -> sqlite3.OperationalError:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else error
    return sqlite3.OperationalError(
        f"cannot open the results index {str(index)!r} to read it ({reason}); expected a "
        f"readable assay results index: check the permissions of the file and of its folder "
        f"{str(index.parent)!r}"
    )


def _has_json(db: sqlite3.Connection) -> bool:
    """Whether SQLite has its JSON functions (built in since 3.38, an extension before)."""
    try:
        db.execute("SELECT COUNT(*) FROM json_each('[]')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True
