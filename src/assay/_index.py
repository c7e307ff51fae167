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

import contextlib
import datetime
import functools
import hashlib
import importlib.metadata
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ._infrastructure import index_storage_error
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
    updated   REAL NOT NULL,
    digest    TEXT,
    record_digest TEXT
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
            full = index_storage_error(error, self.path)  # "database or disk is full"
            if full is not None:
                raise full from error
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
    try:
        db = sqlite3.connect(_read_only_uri(index, header), uri=True)
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
    read-only file system, no write permission) through :func:`_read_only_uri`.

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


class DamagedIndexError(ValueError):
    """A row of the results index does not match its digest: changed outside assay."""


def _row_digest(
    config: str,
    run_id: str,
    params: str,
    replicate: int,
    status: str,
    metrics: str,
    duration: float | None,
    error: str | None,
    code_hash: str | None,
) -> str:
    """Return the digest of one row of the index: its values and the experiment that wrote it.

    The values are those SQLite gives back (JSON text, float or None), in their ``repr``.
    """
    values = (run_id, params, replicate, status, metrics, duration, error, code_hash)
    return _row_hasher(config)(values)


def _row_hasher(config: str) -> Callable[[tuple[Any, ...]], str]:
    """Return the digest function of the rows of experiment ``config`` (its part hashed once)."""
    base = hashlib.blake2b(repr(config).encode(), digest_size=16)

    def digest(values: tuple[Any, ...]) -> str:
        hasher = base.copy()
        hasher.update(repr(values).encode())
        return hasher.hexdigest()

    return digest


def _record_digest(run_id: str, record: str | None) -> str:
    """Return the digest of a row's record text, with its run id (a swapped record differs)."""
    return hashlib.blake2b(repr((run_id, record)).encode(), digest_size=16).hexdigest()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


#: The digest of a row as SQLite computes it (the function is registered on writers).
_ROW_DIGEST_SQL = (
    "assay_row_digest(?, run_id, params, replicate, status, metrics, duration, error, code_hash)"
)


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
    def __init__(self, folder: str | Path, *, create: bool = True, read_only: bool = False) -> None:
        self.path = Path(folder) / INDEX_NAME
        if (read_only or not create) and not self.path.is_file():
            raise _no_index(folder)
        # another tool's database is never opened to write
        claim_folder(folder, create=create and not read_only)
        self._config: str | None = None  # the uid of the experiment the rows belong to
        if read_only:  # an archive, a read-only file system: nothing is created or changed
            self._db = _open_read_only(self.path)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: transactions are opened explicitly around each batch
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_SECONDS)
        try:
            _retry_locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            # WAL + NORMAL never corrupts; a crash can only lose the last batch, still in the cache
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.create_function("assay_row_digest", 9, _row_digest, deterministic=True)
            self._db.create_function("assay_record_digest", 2, _record_digest, deterministic=True)
            self._add_digest_columns()
        except BaseException:
            self._db.close()
            raise

    def _add_digest_columns(self) -> None:
        """Give an index of an older assay its digest columns (its rows are adopted by claim)."""
        if self._has_digests():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
            for column in ("digest", "record_digest"):
                if column not in columns:  # another driver may have just added it
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _has_digests(self) -> bool:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        return {"digest", "record_digest"} <= columns

    def _identity_config(self) -> str:
        """Return the config uid of the experiment stored in the index ("" when none)."""
        if self._config is None:
            stored = self.get_meta("experiment")
            self._config = _config_of(stored)
        return self._config

    def _damaged(self, run_id: str) -> DamagedIndexError:
        return DamagedIndexError(
            f"results index {str(self.path)!r}: the row of run {run_id} does not match its "
            "digest (it was changed outside assay, or written by another experiment); the "
            "checksummed record of the run in the cache of its folder is not affected: run the "
            "experiment again, which repairs the row from it without running anything again "
            f"(or delete {INDEX_NAME} and its -wal and -shm files: run() rebuilds the index)"
        )

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
        with self._transaction():
            self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: taken at once (BEGIN IMMEDIATE), so reads in it stay true."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # After "database or disk is full" SQLite may have rolled back already: a second
            # ROLLBACK would fail and hide that error.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @_names_the_file
    def claim(
        self, identity: dict[str, Any], check: Callable[[dict[str, Any] | None], None]
    ) -> None:
        """Check the experiment stored in the index and store ``identity``, atomically.

        ``check`` gets the stored identity (None in a new index) and raises to refuse the
        folder. Both happen in one write transaction, so of two drivers of different
        experiments started together on one folder, the second sees the first one's identity.
        The rows move along with the identity's ``config`` uid (the same experiment under an
        older encoding's uid); rows an older assay wrote without digests are adopted as they are.
        """
        new = _config_of(identity)
        with self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE key = 'experiment'").fetchone()
            stored = None if row is None else json.loads(row[0])
            check(stored)
            old = _config_of(stored)
            if old != new:
                self._db.execute(
                    f"UPDATE runs SET digest = {_ROW_DIGEST_SQL} WHERE digest = {_ROW_DIGEST_SQL}",
                    (new, old),
                )
            self._db.execute(
                f"UPDATE runs SET digest = {_ROW_DIGEST_SQL} WHERE digest IS NULL", (new,)
            )
            self._db.execute(
                "UPDATE runs SET record_digest = assay_record_digest(run_id, record) "
                "WHERE record_digest IS NULL"
            )
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('experiment', ?)",
                (json.dumps(identity),),
            )
        self._config = new

    @_names_the_file
    def repair(self, specs: Sequence[RunSpec]) -> list[str]:
        """Reset the rows that do not match their digest; return the run ids of ``specs`` reset.

        A damaged row of one of ``specs`` becomes ``pending`` again, with the spec's params (its
        record is read back from the cache, not run again); a damaged row of another run is
        dropped (planned again by the sweep it belongs to).
        """
        config = self._identity_config()
        by_id = {s.run_id: s for s in specs}
        now = time.time()
        with self._transaction():
            damaged = [
                rid
                for (rid,) in self._db.execute(
                    f"SELECT run_id FROM runs WHERE (digest IS NOT NULL AND digest != "
                    f"{_ROW_DIGEST_SQL}) OR (record_digest IS NOT NULL AND record_digest != "
                    "assay_record_digest(run_id, record))",
                    (config,),
                )
            ]
            reset = [by_id[rid] for rid in damaged if rid in by_id]
            self._db.executemany(
                "UPDATE runs SET params = ?, replicate = ?, status = 'pending', metrics = '{}', "
                "duration = NULL, error = NULL, code_hash = NULL, record = NULL, updated = ?, "
                "digest = ?, record_digest = ? WHERE run_id = ?",
                [self._pending(config, s, now) for s in reset],
            )
            self._db.executemany(
                "DELETE FROM runs WHERE run_id = ?", [(r,) for r in damaged if r not in by_id]
            )
        return [s.run_id for s in reset]

    @staticmethod
    def _pending(config: str, spec: RunSpec, now: float) -> tuple[Any, ...]:
        """Return params, replicate, time and digests of the pending row of ``spec``, and its id."""
        params = json.dumps(spec.params)
        rid, rep = spec.run_id, spec.replicate
        digest = _row_digest(config, rid, params, rep, "pending", "{}", None, None, None)
        return (params, rep, now, digest, _record_digest(rid, None), rid)

    @_names_the_file
    def plan(self, specs: Sequence[RunSpec]) -> None:
        """Add the runs not yet in the index as ``pending``; runs already there are kept."""
        first = self._db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM runs").fetchone()[0]
        now = time.time()
        config = self._identity_config()
        self._write(
            "INSERT OR IGNORE INTO runs (params, replicate, updated, digest, record_digest, "
            "run_id, seq, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
            ((*self._pending(config, s, now), first + i) for i, s in enumerate(specs)),
        )

    @_names_the_file
    def store(self, outcomes: Iterable[Outcome]) -> None:
        """Write finished runs (one transaction for the whole batch)."""
        now = time.time()
        config = self._identity_config()
        rows = []
        for o in outcomes:
            # as SQLite gives them back, so that the digest of what is read back is the same
            values = (
                str(o.status),
                json.dumps(o.metrics),
                None if o.duration is None else float(o.duration),
                _text(o.error),
                _text(o.code_hash),
            )
            digest = _record_digest(o.run_id, o.record)
            rows.append((*values, o.record, now, config, *values, digest, o.run_id))
        self._write(
            "UPDATE runs SET status = ?, metrics = ?, duration = ?, error = ?, code_hash = ?, "
            "record = ?, updated = ?, digest = assay_row_digest(?, run_id, params, replicate, "
            "?, ?, ?, ?, ?), record_digest = ? WHERE run_id = ?",
            rows,
        )

    @_names_the_file
    def mark(self, run_ids: Iterable[str], status: str) -> None:
        """Set the status of the given runs (e.g. ``cancelled`` after Ctrl-C)."""
        if status not in STATUSES:
            raise ValueError(f"status = {status!r}; expected one of {', '.join(STATUSES)}")
        now = time.time()
        config = self._identity_config()
        self._write(
            "UPDATE runs SET status = ?, updated = ?, digest = assay_row_digest(?, run_id, "
            "params, replicate, ?, metrics, duration, error, code_hash) WHERE run_id = ?",
            ((status, now, config, status, run_id) for run_id in run_ids),
        )

    @_names_the_file
    def set_meta(self, key: str, value: Any) -> None:
        """Store one JSON value under ``key`` in the index's metadata."""
        self._write(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(key, json.dumps(value))]
        )
        self._config = None  # read again: the experiment may have been stored

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
        """Return the rows of the given runs (all when None), in planning order.

        Raises:
            DamagedIndexError: a row does not match its digest (the message names its run).

        """
        digest = "digest" if self._has_digests() else "NULL"  # an older assay's index
        sql = (
            "SELECT run_id, params, replicate, status, metrics, duration, error, code_hash, "
            f"{digest} FROM runs ORDER BY seq"
        )
        check = _row_hasher(self._identity_config())
        wanted = None if run_ids is None else set(run_ids)
        out = []
        for row in self._db.execute(sql):
            rid, params, rep, status, metrics, duration, error, code_hash, stored = row
            if wanted is not None and rid not in wanted:
                continue
            if stored is not None and stored != check(row[:-1]):
                raise self._damaged(rid)
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
        """Return the stored record JSON of each run (None for runs without a record).

        Raises:
            DamagedIndexError: a record does not match its digest (the message names its run).

        """
        digest = "record_digest" if self._has_digests() else "NULL"
        found: dict[str, str | None] = {}
        for start in range(0, len(run_ids), 500):  # stay under SQLite's parameter limit
            chunk = run_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT run_id, record, {digest} FROM runs WHERE run_id IN ({marks})"
            for rid, record, stored in self._db.execute(sql, chunk):
                if stored is not None and stored != _record_digest(rid, record):
                    raise self._damaged(rid)
                found[rid] = record
        return [found.get(rid) for rid in run_ids]


def _config_of(identity: Any) -> str:
    """Return the config uid of a stored experiment identity ("" when there is none)."""
    config = identity.get("config") if isinstance(identity, dict) else None
    return config if isinstance(config, str) else ""
