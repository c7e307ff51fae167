"""Results of an experiment: filter, summarise, tabulate and plot the runs of the index.

A ``Results`` of up to ``IN_MEMORY`` runs reads their rows from the index at once and keeps
them. A larger one keeps which runs it holds (their planning numbers: 8 bytes a run, or a
range) and reads the rows from the index when a method needs them, as a stream: a sweep of a
million runs is not held in memory until a method's answer is itself that large (``rows``,
``table()``, ``to_dataframe()``, ``records()``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._folder import RUNS
from ._index import ResultsIndex
from ._records import _moved, _verified
from ._resultplots import ResultsPlots
from ._rows import RunRow
from ._rowsource import _Indexed, _Listed, _Runs
from ._schema import STATUSES
from ._summary import _FIRST, _LAST, flat_table, summarise

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    import pandas
    from assay_ops import RunRecord

#: Most runs whose rows a ``Results`` of an experiment folder reads at once and keeps (about
#: 0.7 KB a run); a larger one reads them from the folder's index when asked.
IN_MEMORY = 10_000


class Results(ResultsPlots):
    """The runs of an experiment, as recorded in its results index.

    ``Experiment.run()`` returns one; ``Results.load(folder)`` reads one from any experiment
    folder. Rows keep the planning order. Tables and summaries need only the standard library;
    ``to_dataframe()`` needs pandas (``pip install 'assay[pandas]'``) and ``plot()`` needs
    matplotlib (``pip install 'assay[plot]'``).

    A ``Results`` of more than ``IN_MEMORY`` (10,000) runs holds which runs it has, not their
    rows: each method reads the rows it needs from the folder's index, checking each against
    its digest, so it answers with the rows as the index holds them then (a run completed
    since by another ``run()`` shows its new status; the folder must stay where it was), and
    ``len()`` and ``counts()`` are single queries of the index. A smaller one reads its rows
    at once and keeps them.

    Examples:
        >>> results = Results([])
        >>> len(results), results.counts()
        (0, {})

    """

    def __init__(self, rows: Sequence[RunRow], folder: str | Path | None = None) -> None:
        self._runs: _Runs = _Listed(list(rows))
        self.folder = None if folder is None else Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> Results:
        """Read the results of the experiment in ``folder``: every run its index holds.

        The index is opened read-only: an archived folder (a read-only file system, no write
        permission) is read as it is. Every row is checked against its digest here; the rows
        of more than ``IN_MEMORY`` runs are not kept but read again (and checked) when asked.

        Raises:
            FileNotFoundError: the folder holds no results index.
            DamagedIndexError: a row of the index does not match its digest (the message names
                its run; running the experiment again repairs it from the cache).

        """
        with ResultsIndex(folder, read_only=True) as index:
            runs = index.planned_seqs()
            if len(runs) <= IN_MEMORY:
                return cls(list(index.iter_rows(runs)), folder)
            index.check()
        return cls._of(_Indexed(Path(folder), runs), folder)

    @classmethod
    def _indexed(cls, folder: str | Path, seqs: Sequence[int]) -> Results:
        """Return the results of the runs at planning numbers ``seqs`` of ``folder``'s index."""
        if len(seqs) <= IN_MEMORY:
            with ResultsIndex(folder, read_only=True) as index:
                return cls(list(index.iter_rows(seqs)), folder)
        return cls._of(_Indexed(Path(folder), seqs), folder)

    @classmethod
    def _of(cls, runs: _Runs, folder: str | Path | None) -> Results:
        results = cls.__new__(cls)
        results._runs = runs
        results.folder = None if folder is None else Path(folder)
        return results

    # -------------------------------------------------------------- basics

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[RunRow]:
        return iter(self._runs)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts().items())
        return f"Results({count_runs(len(self))}: {counts or 'none'})"

    @property
    def rows(self) -> list[RunRow]:
        """The runs, in planning order."""
        return list(self._runs)

    @property
    def param_names(self) -> list[str]:
        """Names of the parameters of all runs, in order of first appearance."""
        return self._runs.names()[0]

    @property
    def metric_names(self) -> list[str]:
        """Names of the scalar metrics recorded by any run, in order of first appearance."""
        return self._runs.names()[1]

    def counts(self) -> dict[str, int]:
        """Return the number of runs per status (pending, success, failed, timeout, cancelled)."""
        found = self._runs.counts()
        return {s: found[s] for s in STATUSES if found.get(s)}

    # -------------------------------------------------------------- selection

    def filter(self, **params: Any) -> Results:
        """Return the runs whose parameters match every condition.

        A condition is a value (compared with ``==``, so ``1000`` matches ``1000.0``) or a
        predicate called with the parameter's value.

        Raises:
            KeyError: a name that no run has as parameter (the message lists the parameters).

        Examples:
            >>> Results([]).filter()
            Results(0 runs: none)

        """
        known = set(self.param_names) if params else set()
        for name in params:
            if name not in known and len(self):
                raise KeyError(
                    f"filter(): no parameter {name!r}; the runs have {sorted(known) or 'none'}"
                )

        def matches(row: RunRow) -> bool:
            for name, want in params.items():
                if name not in row.params:
                    return False
                value = row.params[name]
                ok = want(value) if callable(want) else value == want
                if not ok:
                    return False
            return True

        return Results._of(self._runs.select(matches), self.folder)

    def failed(self) -> Results:
        """Return the runs that failed.

        See [`with_status`][assay.Results.with_status] for time-outs too.
        """
        return Results._of(self._runs.of_status("failed"), self.folder)

    def with_status(self, *statuses: str) -> Results:
        """Return the runs of any of ``statuses``, in planning order.

        Raises:
            ValueError: a status that runs cannot have (the message lists those they can).

        Examples:
            >>> Results([]).with_status("failed", "timeout")
            Results(0 runs: none)

        """
        for status in statuses:
            if status not in STATUSES:
                raise ValueError(
                    f"with_status(): status = {status!r}; expected one of {', '.join(STATUSES)}"
                )
        wanted = set(statuses)
        if len(wanted) == 1:
            return Results._of(self._runs.of_status(statuses[0]), self.folder)
        return Results._of(self._runs.select(lambda row: row.status in wanted), self.folder)

    def records(self) -> list[Any]:
        """Return the full ``RunRecord`` of every finished run.

        Pending runs have none. A run whose operation could not even start (a worker that
        could not import it) has a ``failed`` record whose error says why.

        Raises:
            ValueError: these results were not read from an experiment folder.

        """
        return list(self.iter_records())

    def iter_records(self) -> Iterator[RunRecord]:
        """Yield the records of [`records`][assay.Results.records] one by one, read in batches.

        Raises:
            ValueError: these results were not read from an experiment folder.

        """
        folder = self.folder
        if folder is None:
            raise ValueError("records(): these results have no experiment folder to read from")
        from assay_ops import RunRecord  # imported on use: tables need no operation layer

        from ._outcomes import _legacy_worker_error

        runs = str((folder / RUNS).resolve())
        rows = iter(self._runs)
        while batch := list(itertools.islice(rows, 500)):
            with ResultsIndex(folder, read_only=True) as index:
                texts = index.records([row.run_id for row in batch])
            for row, text in zip(batch, texts, strict=True):
                if text is not None:  # an older version's marker reads as the run's record
                    yield _moved(RunRecord.from_json(_legacy_worker_error(text, row)), runs)

    def series(self, metric: str) -> list[dict[str, Any]]:
        """Return every value of ``metric`` of every run: a learning curve, one row per value.

        Each row has ``run_id``, ``step`` (the step the value was recorded with, None when
        it had none), ``value`` and the run's parameters (one named like a column gets the
        column ``param:<name>``). Rows come in run order, then in the order each run
        recorded its values; read from the runs' records, so pending runs have none.

        Raises:
            KeyError: no run recorded ``metric`` (the message lists the metrics they did).
            ValueError: these results were not read from an experiment folder.

        Examples:
            One curve per run, as columns of a DataFrame:

            >>> import pandas  # doctest: +SKIP
            >>> curves = pandas.DataFrame(results.series("loss"))  # doctest: +SKIP
            >>> curves.pivot(index="step", columns="run_id", values="value")  # doctest: +SKIP

        """
        from ._series import series_rows

        return series_rows(self.iter_records(), metric)

    def artifact(self, run_id: str, name: str) -> Path:
        """Return the file of artifact ``name`` of run ``run_id``, checked against its record.

        The file's size and SHA-256 are compared with those the run recorded when it wrote the
        artifact, so a file changed or damaged since is never read as the run's output.

        Raises:
            KeyError: ``run_id`` is not one of these runs, has no record, or has no artifact
                ``name`` (the message lists its artifacts).
            FileNotFoundError: the artifact was not written to a file, or the file is gone.
            ValueError: the file differs from the record (the message names the file).

        """
        row = self._runs.find(run_id)
        if row is None:
            raise KeyError(
                f"artifact(): run_id = {run_id!r} is not one of these {count_runs(len(self))}"
            )
        records = Results([row], self.folder).records()
        if not records:
            raise KeyError(f"artifact(): run {run_id} ({row.status}) has no record")
        found = {a.get("name"): a for a in records[0].artifacts}
        if name not in found:
            raise KeyError(
                f"artifact(): run {run_id} has no artifact {name!r}; it has "
                f"{sorted(found) or 'none'}"
            )
        return _verified(found[name], run_id)

    # -------------------------------------------------------------- tables

    def table(self) -> list[dict[str, Any]]:
        """Return one flat dict per run: run id, params, metrics' last values, replicate, status.

        When some run ran in a batch job (a submitit or Slurm backend), every row also has
        ``job_id``, ``stdout`` and ``stderr``: the job and the paths of its logs.

        A parameter named like a column of the run's own (``run_id``, ``replicate``,
        ``status``, ``duration``, ``error``, and the job's columns when there are) gets the
        column ``param:<name>``; a metric named like a parameter or one of those,
        ``metric:<name>``. No value is ever overwritten.

        Examples:
            >>> from assay import RunRow
            >>> row = RunRow("r0", {"duration": 10}, 0, "success", {"acc": 0.5}, 0.2, None, "h")
            >>> flat = Results([row]).table()[0]
            >>> flat["param:duration"], flat["duration"], flat["acc"]
            (10, 0.2, 0.5)

        """
        param_names, metric_names = self._runs.names()
        return flat_table(self._runs, param_names, metric_names)

    def to_dataframe(self) -> pandas.DataFrame:
        """Return a DataFrame with one row per run (the columns of [`table`][assay.Results.table]).

        Raises:
            ImportError: pandas is not installed; the message names the ``assay[pandas]`` extra.

        """
        try:
            import pandas
        except ImportError as error:
            raise ImportError(
                "Results.to_dataframe() needs pandas: pip install 'assay[pandas]'"
            ) from error
        own = {*_FIRST, *_LAST}
        columns = [*_FIRST, *(f"param:{p}" if p in own else p for p in self.param_names)]
        table = self.table()
        if table:
            columns = list(table[0])
        frame: pandas.DataFrame = pandas.DataFrame(table, columns=columns)
        return frame

    def best(self, metric: str | None = None, direction: str | None = None) -> RunRow:
        """Return the successful run with the best value of ``metric`` (the first of ties).

        The results of a [`search`][assay.search] know their metric and direction; for any
        other sweep, name them. Only successful runs whose last value of ``metric`` is a
        finite number compete (pruned runs stopped before their end).

        Args:
            metric: the metric to rank by (default: the search's).
            direction: ``"minimize"`` or ``"maximize"`` (default: the search's, else
                ``"minimize"``).

        Raises:
            ValueError: no metric known, or no successful run recorded it.

        Examples:
            >>> from assay import RunRow
            >>> rows = [RunRow("a", {"lr": 0.1}, 0, "success", {"loss": 0.5}, 1.0, None, None),
            ...         RunRow("b", {"lr": 0.01}, 0, "success", {"loss": 0.2}, 1.0, None, None)]
            >>> Results(rows).best("loss").params
            {'lr': 0.01}

        """
        from ._best import best_row, objective

        metric, direction = objective(self.folder, metric, direction)
        return best_row(self, metric, direction)

    def summary(self, metric: str, by: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Return mean, standard deviation and count of ``metric`` over the successful runs.

        Args:
            metric: a scalar metric's name.
            by: the parameters to group by (a list, or one name); default all parameters,
                i.e. one row per point of the sweep, summarising its replicates.

        Returns:
            One dict per group, in order of first appearance: the ``by`` values, then ``mean``,
            ``std`` (sample standard deviation, NaN for a single run) and ``count``. As in
            pandas' ``groupby(...).agg(["mean", "std", "count"])``, NaN values are skipped (a
            group of NaN only has count 0 and NaN mean), and an infinite value gives an
            infinite mean and a NaN std.

        Raises:
            KeyError: unknown metric or parameter name.
            TypeError: the metric is not numeric.

        """
        param_names, metric_names = self._runs.names()
        return summarise(self._runs, metric, by, param_names, metric_names)


def count_runs(n: int) -> str:
    """Return ``"1 run"`` or ``"<n> runs"``.

    Examples:
        >>> count_runs(1), count_runs(3)
        ('1 run', '3 runs')

    """
    return "1 run" if n == 1 else f"{n} runs"
