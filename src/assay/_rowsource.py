"""The runs a ``Results`` holds: rows in memory, or planning numbers of a folder's index.

A ``Results`` asks its runs for rows, counts and names through ``_Runs``: ``_Listed`` holds the
rows; ``_Indexed`` holds which runs of an experiment folder's index it has (their planning
numbers: 8 bytes a run, or a range) and reads the rows from the index as a stream when asked.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ._index import ResultsIndex
from ._rows import RunRow


class _Runs(Protocol):
    """The runs a ``Results`` holds, and the questions it asks of them."""

    def __iter__(self) -> Iterator[RunRow]: ...

    def __len__(self) -> int: ...

    def counts(self) -> dict[str, int]:
        """Return the number of runs per status."""
        ...

    def names(self) -> tuple[list[str], list[str]]:
        """Return the names of the params and the metrics, in order of first appearance."""
        ...

    def select(self, keep: Callable[[RunRow], bool]) -> _Runs:
        """Return the runs that ``keep`` keeps (asked now, once per run)."""
        ...

    def of_status(self, status: str) -> _Runs:
        """Return the runs of ``status``."""
        ...

    def find(self, run_id: str) -> RunRow | None:
        """Return the row of ``run_id`` if it is one of these runs."""
        ...


class _Listed:
    """Runs held in memory: a ``Results`` made from rows."""

    def __init__(self, rows: list[RunRow]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[RunRow]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    def names(self) -> tuple[list[str], list[str]]:
        params = dict.fromkeys(k for row in self._rows for k in row.params)
        metrics = dict.fromkeys(k for row in self._rows for k in row.metrics)
        return list(params), list(metrics)

    def select(self, keep: Callable[[RunRow], bool]) -> _Runs:
        return _Listed([row for row in self._rows if keep(row)])

    def of_status(self, status: str) -> _Runs:
        return self.select(lambda row: row.status == status)

    def find(self, run_id: str) -> RunRow | None:
        return next((row for row in self._rows if row.run_id == run_id), None)


class _Indexed:
    """Runs of an experiment folder's index, kept as their planning numbers (ascending).

    Each question opens the index read-only and reads what it needs: counts and lengths are
    queries, rows are streamed and checked against their digests.
    """

    def __init__(self, folder: Path, seqs: Sequence[int]) -> None:
        self._folder = folder
        self._seqs = seqs

    def _index(self) -> ResultsIndex:
        return ResultsIndex(self._folder, read_only=True)

    def __iter__(self) -> Iterator[RunRow]:
        with self._index() as index:
            yield from index.iter_rows(self._seqs)

    def __len__(self) -> int:
        with self._index() as index:
            return index.count(self._seqs)

    def counts(self) -> dict[str, int]:
        with self._index() as index:
            return index.status_counts(self._seqs)

    def names(self) -> tuple[list[str], list[str]]:
        with self._index() as index:
            return index.names(self._seqs)

    def select(self, keep: Callable[[RunRow], bool]) -> _Runs:
        with self._index() as index:
            kept = array("q", (seq for seq, row in index.numbered_rows(self._seqs) if keep(row)))
        return _Indexed(self._folder, kept)

    def of_status(self, status: str) -> _Runs:
        with self._index() as index:
            return _Indexed(self._folder, index.seqs(self._seqs, status))

    def find(self, run_id: str) -> RunRow | None:
        with self._index() as index:
            found = index.row(run_id)
        if found is None or not _holds(self._seqs, found[0]):
            return None
        return found[1]


def _holds(seqs: Sequence[int], seq: int) -> bool:
    """Whether the ascending ``seqs`` hold ``seq``."""
    if isinstance(seqs, range):
        return seq in seqs
    at = bisect.bisect_left(seqs, seq)
    return at < len(seqs) and seqs[at] == seq
