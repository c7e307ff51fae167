"""The results index: an embedded SQLite database in the experiment folder.

Only the driver process writes it, from the records that workers wrote atomically into the
cache; workers never open it, so a sweep on a shared filesystem never has two writers.
Writes are batched in one transaction and the database runs in WAL mode, so a status query
of a 100,000-run sweep is a single indexed ``GROUP BY``.

Nothing here holds every row of a sweep in memory: a sweep's run ids are compared with the
index inside SQLite (a temporary table joined with an index of the runs), rows are read as a
stream, and each row's digest is checked when it is read. Which rows a program other than
assay changed is logged by triggers, so ``run()`` repairs those without checking every row.

A folder is marked (``.assay-experiment``) before assay writes its index; an ``index.sqlite``
in a folder without the marker is only read, read-only, to tell an index of an older assay
(adopted) from another tool's database (refused, never modified).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import itertools
import json
import os
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._folderpath import check_folder
from ._infrastructure import index_storage_error

if TYPE_CHECKING:  # only for annotations: the index is read without the experiment layer
    from ._runs import RunSpec

_F = TypeVar("_F", bound=Callable[..., Any])

#: File name of the index inside an experiment folder.
INDEX_NAME = "index.sqlite"

#: Statuses a run can have in the index; ``pending`` means planned but not finished,
#: ``timeout`` that its job reached its time limit before the run ended.
STATUSES = ("pending", "success", "failed", "timeout", "cancelled")

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
            named = _file_error(error, self.path)
            if named is None:
                raise
            raise named from error

    return wrapper  # type: ignore[return-value]


def _streams_naming_the_file(method: _F) -> _F:
    """``_names_the_file`` for a generator: errors raised while it is read are named too."""

    @functools.wraps(method)
    def wrapper(self: ResultsIndex, *args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            named = _file_error(error, self.path)
            if named is None:
                raise
            raise named from error

    return wrapper  # type: ignore[return-value]


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
        ValueError: ``folder`` is a file.

    """
    root = check_folder(folder, "folder", "the folder of an experiment")
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
    job: str | None = None,
) -> str:
    """Return the digest of one row of the index: its values and the experiment that wrote it.

    The values are those SQLite gives back (JSON text, float or None), in their ``repr``. A
    row without a job leaves it out: rows written before the column existed keep their digest.
    """
    values = (run_id, params, replicate, status, metrics, duration, error, code_hash)
    return _row_hasher(config)(values if job is None else (*values, job))


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
    "assay_row_digest(?, run_id, params, replicate, status, metrics, duration, error, code_hash, "
    "job)"
)


def _write_marker(root: Path) -> None:
    """Write the marker of ``root`` exclusively and atomically (it appears complete, once)."""
    import importlib.metadata  # here: reading an index (``assay status``) does not need it

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


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as the index holds it: what tables, filters and plots need.

    Attributes:
        run_id: the canonical run id.
        params: the run's parameters.
        replicate: the replicate index.
        status: ``pending``, ``success``, ``failed``, ``timeout`` or ``cancelled``.
        metrics: the last value of each scalar metric.
        duration: seconds the operation ran, or None when it has not finished.
        error: ``"Type: message"`` of a failed run, the job's message of a run whose job
            failed, timed out or was cancelled, else None.
        code_hash: the code hash of the operation that produced the row.
        job_id: the batch job the run ran in (``"123_4"`` for a Slurm array task), if any.
        stdout: the path of that job's standard output log, if known.
        stderr: the path of that job's standard error log, if known.

    """

    run_id: str
    params: dict[str, Any]
    replicate: int
    status: str
    metrics: dict[str, Any]
    duration: float | None
    error: str | None
    code_hash: str | None
    job_id: str | None = None
    stdout: str | None = None
    stderr: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one run, as the driver writes it into the index."""

    run_id: str
    status: str
    metrics: dict[str, Any]
    duration: float | None
    error: str | None
    code_hash: str | None
    record: str | None
    #: The job the run ran in, as ``job_text`` writes it; None outside a job.
    job: str | None = None


class ResultsIndex:
    """The SQLite index of one experiment folder.

    Examples:
        >>> import tempfile
        >>> from assay._runs import RunSpec
        >>> with tempfile.TemporaryDirectory() as folder, ResultsIndex(folder) as index:
        ...     index.plan([RunSpec.of({"n": 1}, 0)])
        ...     index.status_counts()
        {'pending': 1}

    """

    @_names_the_file
    def __init__(self, folder: str | Path, *, create: bool = True, read_only: bool = False) -> None:
        # a file given as the folder: said as such, not as a missing index or NotADirectoryError
        self.path = check_folder(folder, "folder", "the folder of an experiment") / INDEX_NAME
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
            for arguments in (9, 10):  # without and with the job
                self._db.create_function(
                    "assay_row_digest", arguments, _row_digest, deterministic=True
                )
            self._db.create_function("assay_record_digest", 2, _record_digest, deterministic=True)
            self._add_digest_columns()
            self._track_changes()
        except BaseException:
            self._db.close()
            raise

    def _add_digest_columns(self) -> None:
        """Give an index of an older assay its digest and job columns (rows adopted by claim)."""
        if self._has_digests() and self._has_job():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
            for column in ("digest", "record_digest", "job"):
                if column not in columns:  # another driver may have just added it
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _has_digests(self) -> bool:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        return {"digest", "record_digest"} <= columns

    def _has_job(self) -> bool:
        return any(row[1] == "job" for row in self._db.execute("PRAGMA table_info(runs)"))

    def _track_changes(self) -> None:
        """Give the index its change log (see ``_CHANGE_LOG``), once.

        The rows of an index made before the log are all logged as changed: the next
        ``repair`` checks each of them once, as every run of an older assay did.
        """
        if self._has_change_log():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not self._has_change_log():  # another driver may have just made it
                for statement in _CHANGE_LOG:
                    self._db.execute(statement)
                self._db.execute("INSERT INTO runs_changed (run_id) SELECT run_id FROM runs")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _has_change_log(self) -> bool:
        sql = "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('runs_changed', 'runs_renamed')"
        return bool(self._db.execute(sql).fetchone()[0] == 2)

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
        """One write transaction: taken at once (BEGIN IMMEDIATE), so reads in it stay true.

        The change log's entries of the transaction's own writes are removed as it commits:
        assay computed those rows' digests itself. Writers take turns, so the entries made
        after it began are its own (numbered after those already there).
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM runs_changed").fetchone()
            yield
            self._db.execute("DELETE FROM runs_changed WHERE id > ?", (last,))
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
        older encoding's uid); rows written without digests (by an older assay, found through
        the change log) are adopted as they are.
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
                f"UPDATE runs SET digest = {_ROW_DIGEST_SQL} WHERE digest IS NULL AND {_CHANGED}",
                (new,),
            )
            self._db.execute(
                "UPDATE runs SET record_digest = assay_record_digest(run_id, record) "
                f"WHERE record_digest IS NULL AND {_CHANGED}"
            )
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('experiment', ?)",
                (json.dumps(identity),),
            )
        self._config = new

    @_names_the_file
    def repair(self, specs: Iterable[RunSpec]) -> list[str]:
        """Reset the changed rows that do not match their digest; return the run ids reset.

        The rows checked are those the change log holds: written by another program (or an
        older assay) since the last check. A damaged row of one of ``specs`` becomes
        ``pending`` again, with the spec's params (its record is read back from the cache,
        not run again); a damaged row of another run is dropped (planned again by the sweep it
        belongs to). ``specs`` is read only when some row is damaged.
        """
        config = self._identity_config()
        now = time.time()
        with self._transaction():
            damaged = {
                rid
                for (rid,) in self._db.execute(
                    f"SELECT run_id FROM runs WHERE {_CHANGED} AND ((digest IS NOT NULL AND "
                    f"digest != {_ROW_DIGEST_SQL}) OR (record_digest IS NOT NULL AND "
                    "record_digest != assay_record_digest(run_id, record)))",
                    (config,),
                )
            }
            reset = [s for s in specs if s.run_id in damaged] if damaged else []
            self._db.executemany(
                "UPDATE runs SET params = ?, replicate = ?, status = 'pending', metrics = '{}', "
                "duration = NULL, error = NULL, code_hash = NULL, record = NULL, job = NULL, "
                "updated = ?, digest = ?, record_digest = ? WHERE run_id = ?",
                [self._pending(config, s, now) for s in reset],
            )
            kept = {s.run_id for s in reset}
            self._db.executemany(
                "DELETE FROM runs WHERE run_id = ?", [(r,) for r in damaged if r not in kept]
            )
            self._db.execute("DELETE FROM runs_changed")  # checked, and written here
        return [s.run_id for s in reset]

    @staticmethod
    def _pending(config: str, spec: RunSpec, now: float) -> tuple[Any, ...]:
        """Return params, replicate, time and digests of the pending row of ``spec``, and its id."""
        params = json.dumps(spec.params)
        rid, rep = spec.run_id, spec.replicate
        digest = _row_digest(config, rid, params, rep, "pending", "{}", None, None, None)
        return (params, rep, now, digest, _record_digest(rid, None), rid)

    @_names_the_file
    def plan(self, specs: Iterable[RunSpec]) -> None:
        """Add the runs not yet in the index as ``pending``; runs already there are kept."""
        now = time.time()
        config = self._identity_config()
        with self._transaction():
            first = self._db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM runs").fetchone()[0]
            self._db.executemany(
                "INSERT OR IGNORE INTO runs (params, replicate, updated, digest, record_digest, "
                "run_id, seq, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                ((*self._pending(config, s, now), first + i) for i, s in enumerate(specs)),
            )

    @_names_the_file
    def store(self, outcomes: Iterable[Outcome]) -> None:
        """Write finished runs (one transaction for the whole batch)."""
        now = time.time()
        config = self._identity_config()

        def rows() -> Iterator[tuple[Any, ...]]:
            for o in outcomes:
                # as SQLite gives them back, so that the digest of what is read back is the same
                values = (
                    str(o.status),
                    json.dumps(o.metrics),
                    None if o.duration is None else float(o.duration),
                    _text(o.error),
                    _text(o.code_hash),
                    o.job,
                )
                digest = _record_digest(o.run_id, o.record)
                yield (*values, o.record, now, config, *values, digest, o.run_id)

        self._write(
            "UPDATE runs SET status = ?, metrics = ?, duration = ?, error = ?, code_hash = ?, "
            "job = ?, record = ?, updated = ?, digest = assay_row_digest(?, run_id, params, "
            "replicate, ?, ?, ?, ?, ?, ?), record_digest = ? WHERE run_id = ?",
            rows(),
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
            "params, replicate, ?, metrics, duration, error, code_hash, job) WHERE run_id = ?",
            ((status, now, config, status, run_id) for run_id in run_ids),
        )

    @_names_the_file
    def mark_ended(self, ended: Iterable[tuple[str, str, str | None, str | None]]) -> None:
        """Record runs that ended without a record: (run id, status, error, job) each.

        A run whose job failed, timed out or was cancelled before it ended has no record: its
        row gets the status, the job's message as its error, the job (see ``job_text``),
        and no metrics, duration, code hash or record of an earlier attempt.
        """
        now = time.time()
        config = self._identity_config()

        def rows() -> Iterator[tuple[Any, ...]]:
            for run_id, status, error, job in ended:
                if status not in STATUSES:
                    raise ValueError(f"status = {status!r}; expected one of {', '.join(STATUSES)}")
                empty = _record_digest(run_id, None)
                yield (status, error, job, now, config, status, error, job, empty, run_id)

        self._write(
            "UPDATE runs SET status = ?, error = ?, job = ?, metrics = '{}', duration = NULL, "
            "code_hash = NULL, record = NULL, updated = ?, digest = assay_row_digest(?, run_id, "
            "params, replicate, ?, '{}', NULL, ?, NULL, ?), record_digest = ? WHERE run_id = ?",
            rows(),
        )

    @_names_the_file
    def set_meta(self, key: str, value: Any) -> None:
        """Store one JSON value under ``key`` in the index's metadata."""
        self._write(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(key, json.dumps(value))]
        )
        self._config = None  # read again: the experiment may have been stored

    # -------------------------------------------------------------- a sweep against the index

    @_names_the_file
    def planned(self, digest: str) -> bool:
        """Whether every run of the sweep of ``digest`` (``SweepPlan.digest``) is in the index.

        True after ``note_planned(digest)`` until a row is deleted or renamed (by anyone: the
        change log's triggers void the note), so resuming a complete sweep needs no lookup of
        its runs one by one.
        """
        return bool(self.get_meta(_PLANNED) == digest)

    @_names_the_file
    def note_planned(self, digest: str) -> None:
        """Note that every run of the sweep of ``digest`` is in the index (see ``planned``)."""
        self.set_meta(_PLANNED, digest)

    @_names_the_file
    def open_sweep(self, run_ids: Iterable[str]) -> None:
        """Load the run ids of a sweep, in planning order, for the ``sweep_*`` queries.

        They go to a temporary table of this connection (a file of SQLite's, not memory),
        indexed by run id, so that SQLite compares a million run ids with the index in the
        order of its own index of run ids, rather than a Python set of either.
        """
        self._db.execute("DROP TABLE IF EXISTS temp.sweep")
        self._db.execute("CREATE TEMP TABLE sweep (pos INTEGER PRIMARY KEY, run_id TEXT NOT NULL)")
        self._db.execute("BEGIN")  # one transaction of the temporary table's own
        try:
            self._load_sweep(iter(run_ids))
            self._db.execute("CREATE INDEX temp.sweep_order ON sweep (run_id)")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _load_sweep(self, run_ids: Iterator[str]) -> None:
        """Insert the run ids with their positions, a batch per statement when SQLite can.

        A batch goes as one JSON array that SQLite's ``json_each`` splits: a statement per
        50,000 runs rather than one per run. Without SQLite's JSON functions (built without
        them), one statement per run.
        """
        if not _has_json(self._db):
            self._db.executemany("INSERT INTO temp.sweep VALUES (?, ?)", enumerate(run_ids))
            return
        sql = "INSERT INTO temp.sweep SELECT key + ?, value FROM json_each(?)"
        position = 0
        while batch := list(itertools.islice(run_ids, 50_000)):
            self._db.execute(sql, (position, json.dumps(batch)))
            position += len(batch)

    @_streams_naming_the_file
    def sweep_candidates(self, code_hash: str) -> Iterator[tuple[int, str | None, str | None]]:
        """Yield the runs of the open sweep that may need running, in planning order.

        Each is (position in the sweep, status, code hash): status None for a run not in the
        index; else a run that is not a success, or one recorded with a code hash other than
        ``code_hash`` (when it is not empty). Whether a run is in the index is read from its
        index of run ids; the others are found through ``runs_state``: no row is read but
        theirs.
        """
        joined = f"r CROSS JOIN {_SWEEP_IN_ORDER} ON s.run_id = r.run_id"  # runs_state first
        unfinished, args = _unfinished_sql(code_hash, "r.", joined)
        sql = (
            f"SELECT s.pos, NULL, NULL FROM {_SWEEP_IN_ORDER} "
            "WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = s.run_id) "
            f"UNION ALL {unfinished} ORDER BY 1"
        )
        yield from self._db.execute(sql, args)

    @_names_the_file
    def sweep_seqs(self) -> array[int]:
        """Return the planning sequence numbers of the open sweep's runs, ascending."""
        sql = (
            "SELECT r.seq FROM runs r INDEXED BY runs_seq WHERE EXISTS "
            f"(SELECT 1 FROM {_SWEEP_IN_ORDER} WHERE s.run_id = r.run_id) ORDER BY r.seq"
        )
        return array("q", (seq for (seq,) in self._db.execute(sql)))

    @_names_the_file
    def close_sweep(self) -> None:
        """Drop the open sweep's run ids."""
        self._db.execute("DROP TABLE IF EXISTS temp.sweep")

    @_names_the_file
    def unfinished(self, code_hash: str, limit: int) -> list[tuple[str, str, str | None]] | None:
        """Return the runs that are not a success or were recorded with another code hash.

        Each is (run id, status, code hash), for every run of the index, of any sweep; None
        when there are more than ``limit`` (then ask the open sweep instead). Read through
        ``runs_state``: no row is read but theirs.
        """
        sql, args = _unfinished_sql(code_hash, "", "")
        found = self._db.execute(sql, args).fetchmany(limit + 1)
        return None if len(found) > limit else found

    # -------------------------------------------------------------- reads

    @_names_the_file
    def get_meta(self, key: str, default: Any = None) -> Any:
        """Return the JSON value stored under ``key``, or ``default``."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    @_names_the_file
    def status_counts(self, seqs: Sequence[int] | None = None) -> dict[str, int]:
        """Return the number of runs per status (statuses with no runs are left out).

        Args:
            seqs: count only the runs of these planning numbers (ascending; see ``seqs``).

        """
        where, args, merge = self._selecting(seqs)
        if merge is None:
            sql = f"SELECT status, COUNT(*) FROM runs{where} GROUP BY status"
            return {status: count for status, count in self._db.execute(sql, args)}
        counts: dict[str, int] = {}
        for _, status in _at(self._db.execute("SELECT seq, status FROM runs ORDER BY seq"), merge):
            counts[status] = counts.get(status, 0) + 1
        return counts

    @_names_the_file
    def count(self, seqs: Sequence[int] | None = None) -> int:
        """Return the number of runs (of those at ``seqs`` when given)."""
        where, args, merge = self._selecting(seqs)
        if merge is None:
            return int(self._db.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0])
        return sum(1 for _ in _at(self._db.execute("SELECT seq FROM runs ORDER BY seq"), merge))

    @_names_the_file
    def seqs(self, within: Sequence[int] | None = None, status: str | None = None) -> array[int]:
        """Return the planning numbers of the runs (of ``status``, at ``within``), ascending.

        A run's planning number (``seq``) orders the rows as they were planned and never
        changes: a selection of runs kept as these numbers takes 8 bytes a run.
        """
        where, args, merge = self._selecting(within)
        if status is not None:
            where += " AND status = ?" if where else " WHERE status = ?"
            args += (status,)
        cursor = self._db.execute(f"SELECT seq FROM runs{where} ORDER BY seq", args)
        return array("q", (seq for (seq,) in _at(cursor, merge)))

    @_names_the_file
    def planned_seqs(self) -> range:
        """Return the planning numbers of every run in the index now (and of none planned later)."""
        (last,) = self._db.execute("SELECT MAX(seq) FROM runs").fetchone()
        return range(0 if last is None else last + 1)

    def _selecting(self, seqs: Sequence[int] | None) -> tuple[str, tuple[Any, ...], Any]:
        """Return how to select the runs at ``seqs``: an SQL condition, its arguments, and more.

        The third value is the planning numbers left to merge with the rows in Python (None:
        the condition selects them all). A range of numbers is a condition on ``seq`` (none
        when it covers every row); any other selection is merged with the rows read in
        planning order.
        """
        if seqs is None:
            return "", (), None
        if isinstance(seqs, range) and seqs.step == 1:
            low, high = self._db.execute("SELECT MIN(seq), MAX(seq) FROM runs").fetchone()
            if low is None or (seqs.start <= low and high < seqs.stop):
                return "", (), None
            return " WHERE seq >= ? AND seq < ?", (seqs.start, seqs.stop), None
        return "", (), seqs

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
        wanted = None if run_ids is None else set(run_ids)
        return [row for row in self.iter_rows() if wanted is None or row.run_id in wanted]

    def iter_rows(self, seqs: Sequence[int] | None = None) -> Iterator[RunRow]:
        """Yield the rows in planning order, each checked against its digest as it is read.

        Args:
            seqs: only the rows of these planning numbers (ascending; see ``seqs``).

        Raises:
            DamagedIndexError: a row does not match its digest (the message names its run).

        """
        return (row for _, row in self.numbered_rows(seqs))

    @_streams_naming_the_file
    def numbered_rows(self, seqs: Sequence[int] | None = None) -> Iterator[tuple[int, RunRow]]:
        """Yield (planning number, row) as ``iter_rows`` yields the rows."""
        where, args, merge = self._selecting(seqs)
        sql = f"SELECT seq, {self._checked_columns()} FROM runs{where} ORDER BY seq"
        check = _row_hasher(self._identity_config())
        loads = json.loads
        for row in _at(self._db.execute(sql, args), merge):
            seq, rid, params, rep, status, metrics, duration, error, code_hash, job, stored = row
            if stored is not None and stored != check(_digested(row[1:-1])):
                raise self._damaged(rid)
            yield (
                seq,
                RunRow(
                    rid, loads(params), rep, status, loads(metrics), duration, error, code_hash,
                    *_job_fields(job),
                ),
            )  # fmt: skip

    @_names_the_file
    def row(self, run_id: str) -> tuple[int, RunRow] | None:
        """Return the planning sequence number and the row of ``run_id``, checked; None if absent.

        Raises:
            DamagedIndexError: the row does not match its digest.

        """
        sql = f"SELECT seq, {self._checked_columns()} FROM runs WHERE run_id = ?"
        found = self._db.execute(sql, (run_id,)).fetchone()
        if found is None:
            return None
        seq, rid, params, rep, status, metrics, duration, error, code_hash, job, stored = found
        checked = _row_hasher(self._identity_config())(_digested(found[1:-1]))
        if stored is not None and stored != checked:
            raise self._damaged(rid)
        row = RunRow(
            rid, json.loads(params), rep, status, json.loads(metrics), duration, error, code_hash,
            *_job_fields(job),
        )  # fmt: skip
        return seq, row

    @_names_the_file
    def check(self) -> None:
        """Check every row against its digest, reading them as a stream.

        Raises:
            DamagedIndexError: a row does not match its digest (the message names its run).

        """
        sql = f"SELECT {self._checked_columns()} FROM runs ORDER BY seq"
        check = _row_hasher(self._identity_config())
        for row in self._db.execute(sql):
            if row[-1] is not None and row[-1] != check(_digested(row[:-1])):
                raise self._damaged(row[0])

    @_names_the_file
    def names(self, seqs: Sequence[int] | None = None) -> tuple[list[str], list[str]]:
        """Return the names of the runs' params and metrics, in order of first appearance.

        Of the runs at ``seqs`` when given. Only those two columns are read (not checked
        against the digests: what is read of the rows themselves is), and a text equal to the
        one before it is not parsed again: replicates of a point share their params' text.
        """
        where, args, merge = self._selecting(seqs)
        sql = f"SELECT seq, params, metrics FROM runs{where} ORDER BY seq"
        params: dict[str, None] = {}
        metrics: dict[str, None] = {}
        last_params = last_metrics = None
        for _, params_text, metrics_text in _at(self._db.execute(sql, args), merge):
            if params_text != last_params:
                params.update(dict.fromkeys(json.loads(params_text)))
                last_params = params_text
            if metrics_text != last_metrics:
                metrics.update(dict.fromkeys(json.loads(metrics_text)))
                last_metrics = metrics_text
        return list(params), list(metrics)

    def _checked_columns(self) -> str:
        """Return the columns a row's digest covers, then its digest (NULL in an old index)."""
        digest = "digest" if self._has_digests() else "NULL"
        job = "job" if self._has_job() else "NULL"
        return (
            f"run_id, params, replicate, status, metrics, duration, error, code_hash, {job}, "
            f"{digest}"
        )

    @_names_the_file
    def jobs(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Return the job (as ``job_text`` wrote it) of each of ``run_ids`` that has one.

        Not checked against the rows' digests: it says where to look (a job id, log paths),
        never what a run computed.
        """
        if not self._has_job():
            return {}
        found: dict[str, str] = {}
        for start in range(0, len(run_ids), 500):  # stay under SQLite's parameter limit
            chunk = run_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT run_id, job FROM runs WHERE job IS NOT NULL AND run_id IN ({marks})"
            found.update(self._db.execute(sql, chunk))
        return found

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


#: The open sweep read in the order of run ids: each run is then looked up in the index of
#: run ids next to the one before it (in pages read just before), not at random.
_SWEEP_IN_ORDER = "temp.sweep s INDEXED BY sweep_order"


def _unfinished_sql(code_hash: str, row: str, join: str) -> tuple[str, tuple[str, ...]]:
    """Return the query of the runs not a success or of another code hash, and its arguments.

    It selects the position in the open sweep, status and code hash when ``join`` joins the
    runs (as ``row``, e.g. ``"r."``) with the sweep, else the run id, status and code hash.
    Both parts are ranges of ``runs_state``: unfinished statuses, and successes of a code hash
    below or above ``code_hash`` (skipped when it is empty: the code is unknown).
    """
    first = "s.pos" if join else "run_id"
    select = f"SELECT {first}, {row}status, {row}code_hash FROM runs {join}"
    sql = f"{select} WHERE {row}status IN ('pending', 'cancelled', 'failed', 'timeout')"
    if not code_hash:
        return sql, ()
    sql += (
        f" UNION ALL {select} WHERE {row}status = 'success' AND {row}code_hash != '' "
        f"AND ({row}code_hash < ? OR {row}code_hash > ?)"
    )
    return sql, (code_hash, code_hash)


def _has_json(db: sqlite3.Connection) -> bool:
    """Whether SQLite has its JSON functions (built in since 3.38, an extension before)."""
    try:
        db.execute("SELECT COUNT(*) FROM json_each('[]')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


#: Rows noted by the change log (``_CHANGE_LOG``): those ``claim`` and ``repair`` look at.
_CHANGED = "run_id IN (SELECT run_id FROM runs_changed)"


def _at(rows: Iterable[tuple[Any, ...]], seqs: Sequence[int] | None) -> Iterator[tuple[Any, ...]]:
    """Yield the rows whose first column, a sequence number, is in ``seqs``; all when None.

    Both are ascending: they are merged, without a set of either.
    """
    if seqs is None:
        yield from rows
        return
    wanted, end = 0, len(seqs)
    for row in rows:
        while wanted < end and seqs[wanted] < row[0]:
            wanted += 1
        if wanted == end:
            return
        if seqs[wanted] == row[0]:
            yield row


def _config_of(identity: Any) -> str:
    """Return the config uid of a stored experiment identity ("" when there is none)."""
    config = identity.get("config") if isinstance(identity, dict) else None
    return config if isinstance(config, str) else ""


def job_text(
    job_id: str | None, stdout: str | None = None, stderr: str | None = None
) -> str | None:
    """Return the index's text of a run's job (None when the run had no job and no logs).

    Examples:
        >>> job_text("12_3", "/logs/12_3_0_log.out", None)
        '{"id": "12_3", "stdout": "/logs/12_3_0_log.out", "stderr": null}'
        >>> job_text(None) is None
        True

    """
    if job_id is None and stdout is None and stderr is None:
        return None
    return json.dumps({"id": job_id, "stdout": stdout, "stderr": stderr})


def _job_fields(text: str | None) -> tuple[str | None, str | None, str | None]:
    """Return job id, stdout and stderr paths of a row's job text (Nones when it has none)."""
    if text is None:
        return None, None, None
    try:
        job = json.loads(text)
    except ValueError:
        return None, None, None
    if not isinstance(job, dict):
        return None, None, None
    fields = (job.get("id"), job.get("stdout"), job.get("stderr"))
    return tuple(v if isinstance(v, str) else None for v in fields)  # type: ignore[return-value]


def _digested(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return a row's values as its digest covers them: the job (last) only when it has one."""
    return values if values[-1] is not None else values[:-1]
