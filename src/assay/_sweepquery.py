"""A sweep against the results index: which of its runs are in the index, and unfinished.

A sweep's run ids are compared with the index inside SQLite (a temporary table joined with
the index of run ids), never as a Python set of either, so resuming a sweep of a million runs
reads only the rows of the runs that may need running.
"""

from __future__ import annotations

import itertools
import json
from array import array
from collections.abc import Iterable, Iterator

from ._indexreader import IndexReader, _names_the_file, _streams_naming_the_file
from ._schema import _PLANNED, _has_json


class SweepQueries(IndexReader):
    """The queries of a sweep against the index (see ``open_sweep``)."""

    @_names_the_file
    def planned(self, digest: str) -> bool:
        """Whether every run of the sweep of ``digest`` (``SweepPlan.digest``) is in the index.

        True after ``note_planned(digest)`` until a row is deleted or renamed (by anyone: the
        change log's triggers void the note), so resuming a complete sweep needs no lookup of
        its runs one by one.
        """
        return bool(self.get_meta(_PLANNED) == digest)

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
