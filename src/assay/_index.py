"""The results index: an embedded SQLite database in the experiment folder.

Only the driver process writes it, from the records that workers wrote atomically into the
cache; workers never open it, so a sweep on a shared filesystem never has two writers.
Writes are batched in one transaction and the database runs in WAL mode, so a status query
of a 100,000-run sweep is a single indexed ``GROUP BY``.

Which rows a program other than assay changed is logged by triggers, so ``run()`` repairs
those without checking every row. The schema and its migrations are in ``_schema``, the rows
and their digests in ``_rows``, the queries in ``_indexreader`` and ``_sweepquery``, the
folder's marker in ``_marker``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._folderpath import check_folder
from ._indexreader import _names_the_file
from ._marker import _no_index, claim_folder
from ._rows import _ROW_DIGEST_SQL, Outcome, _config_of, _record_digest, _row_digest, _text
from ._schema import (
    _BUSY_SECONDS,
    _CHANGED,
    _PLANNED,
    _SCHEMA,
    INDEX_NAME,
    STATUSES,
    _add_digest_columns,
    _open_read_only,
    _retry_locked,
    _track_changes,
)
from ._sweepquery import SweepQueries

if TYPE_CHECKING:  # only for annotations: the index is read without the experiment layer
    from ._runs import RunSpec


class ResultsIndex(SweepQueries):
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
            _add_digest_columns(self._db)
            _track_changes(self._db)
        except BaseException:
            self._db.close()
            raise

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

    @_names_the_file
    def note_planned(self, digest: str) -> None:
        """Note that every run of the sweep of ``digest`` is in the index (see ``planned``)."""
        self.set_meta(_PLANNED, digest)
