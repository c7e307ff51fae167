"""The results index: an embedded SQLite database in the experiment folder.

Only the driver process writes it, from the records that workers wrote atomically into the
cache; workers never open it, so a sweep on a shared filesystem never has two writers.
Writes are batched in one transaction and the database runs in WAL mode, so a status query
of a 100,000-run sweep is a single indexed ``GROUP BY``.

A folder is marked (``.assay-experiment``) before assay writes its index; an ``index.sqlite``
in a folder without the marker is only read, read-only, to tell an index of an older assay
(adopted) from another tool's database (refused, never modified).
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import json
import os
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


#: Marker file written into an experiment folder when assay creates it, before anything else:
#: commands that write or delete refuse a folder without it (another tool's ``index.sqlite``).
MARKER_NAME = ".assay-experiment"


class ForeignFolderError(ValueError):
    """A folder holds an ``index.sqlite`` that assay did not write; assay leaves it alone."""


def _no_index(folder: str | Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"folder {str(folder)!r} has no results index ({INDEX_NAME}); "
        "expected the folder of an experiment that has run"
    )


def is_marked(folder: str | Path) -> bool:
    """Whether ``folder`` holds the marker that assay writes when it creates an experiment."""
    marker = Path(folder) / MARKER_NAME
    return marker.is_file() and not marker.is_symlink()


def claim_folder(folder: str | Path, *, create: bool) -> None:
    """Check that ``folder`` is an experiment folder of assay; mark it when assay creates it.

    A folder with the marker is assay's. A folder whose ``index.sqlite`` has no marker is
    adopted (marked) only when that database, opened read-only, is an assay results index
    (made before the marker existed); anything else is another tool's and is not modified.
    With ``create``, a folder without an index is marked (created when missing).

    Raises:
        ForeignFolderError: the folder's ``index.sqlite`` is not an assay results index.
        FileNotFoundError: ``create`` is False and the folder has no results index.

    """
    root = Path(folder)
    if is_marked(root):
        return
    index = root / INDEX_NAME
    if index.exists():
        problem = _not_an_assay_index(index)
        if problem is not None:
            raise ForeignFolderError(
                f"folder {str(root)!r} was not created by assay: it has no {MARKER_NAME} "
                f"marker and its {INDEX_NAME} is not an assay results index ({problem}); "
                "assay leaves it alone: use another folder"
            )
        try:
            _write_marker(root)
        except OSError:
            if create:
                raise
            # a read-only copy of an older experiment can still be read
        return
    if not create:
        raise _no_index(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_marker(root)


def _not_an_assay_index(index: Path) -> str | None:
    """Say why ``index`` is not an assay results index, or None when it is one.

    The file is never modified: the header is read first, and SQLite opens it read-only, as
    immutable unless the write-ahead log files it would otherwise create are already there.
    """
    try:
        with index.open("rb") as file:
            header = file.read(100)
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    if not header.startswith(b"SQLite format 3\x00"):
        return "not an SQLite database"
    wal = len(header) > 18 and header[18] == 2
    live = all(Path(f"{index}-{end}").exists() for end in ("wal", "shm"))
    uri = index.resolve().as_uri() + ("?mode=ro" if wal and live else "?mode=ro&immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as error:
        return f"unreadable: {error}"
    try:
        runs = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        meta = {row[1] for row in db.execute("PRAGMA table_info(meta)")}
        ours = {"run_id", "seq", "params", "replicate", "status"}
        if not ours <= runs or meta != {"key", "value"}:
            return "no runs and meta tables of assay"
        if db.execute("SELECT 1 FROM meta WHERE key = 'experiment'").fetchone() is None:
            return "no experiment in its meta table"
    except sqlite3.Error as error:
        return f"unreadable: {error}"
    finally:
        db.close()
    return None


def _write_marker(root: Path) -> None:
    """Write the marker of ``root`` exclusively and atomically (it appears complete, once)."""
    try:
        version: str | None = importlib.metadata.version("assay")
    except importlib.metadata.PackageNotFoundError:
        version = None
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    text = json.dumps({"format": "assay-experiment", "created": created, "assay": version})
    marker = root / MARKER_NAME
    temporary = root / f"{MARKER_NAME}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, marker)  # exclusive: fails when the marker exists
    except FileExistsError:
        pass  # another driver marked the folder at the same moment
    except OSError:  # a file system without hard links: create the marker itself exclusively
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, (text + "\n").encode())
            finally:
                os.close(fd)
    finally:
        temporary.unlink()


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
            raise _no_index(folder)
        claim_folder(folder, create=create)  # another tool's database is never opened to write
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
