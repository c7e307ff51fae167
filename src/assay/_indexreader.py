"""Reading the results index: the connection every index has, its queries, errors named.

Nothing here holds every row of a sweep in memory: rows are read as a stream in planning
order, each checked against its digest when it is read, and a selection of runs is kept as
their planning numbers (see ``IndexReader.seqs``).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ._rows import (
    DamagedIndexError,
    RunRow,
    _config_of,
    _digested,
    _job_fields,
    _record_digest,
    _row_hasher,
)
from ._schema import INDEX_NAME, _file_error, _has_digests, _has_job

_F = TypeVar("_F", bound=Callable[..., Any])


def _names_the_file(method: _F) -> _F:
    """Re-raise SQLite's corruption errors naming the index file and the remedy.

    SQLite says only "database disk image is malformed" or "file is not a database"; the index
    is derived data, so the remedy is to delete it: the next ``run()`` rebuilds it from the cache.
    """

    @functools.wraps(method)
    def wrapper(self: IndexReader, *args: Any, **kwargs: Any) -> Any:
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
    def wrapper(self: IndexReader, *args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            named = _file_error(error, self.path)
            if named is None:
                raise
            raise named from error

    return wrapper  # type: ignore[return-value]


class IndexReader:
    """The queries of the results index; ``ResultsIndex`` opens it and adds the writes."""

    path: Path
    _db: sqlite3.Connection
    _config: str | None  # the uid of the experiment the rows belong to

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
        digest = "digest" if _has_digests(self._db) else "NULL"
        job = "job" if _has_job(self._db) else "NULL"
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
        if not _has_job(self._db):
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
        digest = "record_digest" if _has_digests(self._db) else "NULL"
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
