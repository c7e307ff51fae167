"""Results of an experiment: filter, summarise, tabulate and plot the runs of the index.

A ``Results`` of up to ``IN_MEMORY`` runs reads their rows from the index at once and keeps
them. A larger one keeps which runs it holds (their planning numbers: 8 bytes a run, or a
range) and reads the rows from the index when a method needs them, as a stream: a sweep of a
million runs is not held in memory until a method's answer is itself that large (``rows``,
``table()``, ``to_dataframe()``, ``records()``).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import json
import math
import os
import warnings
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._folder import RUNS
from ._index import STATUSES, ResultsIndex, RunRow

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    import pandas
    from assay_ops import RunRecord
    from matplotlib.figure import Figure

#: Most runs whose rows a ``Results`` of an experiment folder reads at once and keeps (about
#: 0.7 KB a run); a larger one reads them from the folder's index when asked.
IN_MEMORY = 10_000

#: Column order of the flat table of runs (params and metrics go in between).
_FIRST = ("run_id",)
_LAST = ("replicate", "status", "duration", "error")
#: Columns of the job each run ran in, after ``_LAST``, when some run ran in a batch job.
_JOB = ("job_id", "stdout", "stderr")


class Results:
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

        Pending runs have none, and neither do runs that failed before their operation
        started (a worker that could not import it): their error is in ``failed()``.

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

        from ._worker import WORKER_ERROR

        # A worker's own error is a JSON object under one key, never a record.
        marker = f'{{"{WORKER_ERROR}":'
        runs = str((folder / RUNS).resolve())
        for run_ids in _batches((row.run_id for row in self._runs), 500):
            with ResultsIndex(folder, read_only=True) as index:
                texts = index.records(run_ids)
            for text in texts:
                if text is not None and not text.startswith(marker):
                    yield _moved(RunRecord.from_json(text), runs)

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
        out: list[dict[str, Any]] = []
        jobs: list[tuple[str | None, str | None, str | None]] = []
        for row in self._runs:
            out.append({"run_id": row.run_id, "row": row})
            jobs.append((row.job_id, row.stdout, row.stderr))
        # the job's columns when some run ran in a job, named apart from params and metrics
        with_jobs = any(job != (None, None, None) for job in jobs)
        own = {*_FIRST, *_LAST, *(_JOB if with_jobs else ())}
        params = {p: (f"param:{p}" if p in own else p) for p in param_names}
        metrics = {m: (f"metric:{m}" if m in params or m in own else m) for m in metric_names}
        for flat, job in zip(out, jobs, strict=True):
            row = flat.pop("row")
            flat.update({col: row.params.get(p) for p, col in params.items()})
            flat.update({col: row.metrics.get(m) for m, col in metrics.items()})
            flat.update(
                replicate=row.replicate, status=row.status, duration=row.duration, error=row.error
            )
            if with_jobs:
                flat.update(zip(_JOB, job, strict=True))
        return out

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
        _check_metric(metric, "summary()", metric_names)
        # one name is one parameter, as in pandas' groupby (not a list of its letters)
        keys = param_names if by is None else [by] if isinstance(by, str) else list(by)
        for name in keys:
            _check_param(name, "summary(): by", param_names)
        groups: dict[str, tuple[dict[str, Any], list[float]]] = {}
        for row in self._runs:
            if row.status != "success" or row.metrics.get(metric) is None:
                continue
            value = row.metrics[metric]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"summary(): metric {metric!r} of run {row.run_id} is {value!r}; "
                    "expected a number"
                )
            point = {k: row.params.get(k) for k in keys}
            groups.setdefault(json.dumps(point, sort_keys=True), (point, []))[1].append(value)
        return [{**point, **_describe(values)} for point, values in groups.values()]

    # -------------------------------------------------------------- plots

    def plot(
        self,
        metric: str,
        x: str,
        hue: str | None = None,
        *,
        logx: bool | None = None,
        logy: bool = False,
        title: str | None = None,
        out: str | Path | None = None,
        path: str | Path | None = None,
    ) -> Figure:
        """Plot ``metric`` against parameter ``x``, one line per value of ``hue``.

        Each line joins the means over replicates with a band of ± one standard deviation;
        every replicate is drawn as a dot, so the spread is visible. The figure is returned,
        for you to add to (``figure.axes[0]``), show in a notebook or save; it is saved as a
        PNG only when ``out`` is given.

        Args:
            metric: a scalar metric.
            x: the parameter on the horizontal axis: a numeric axis when all its values are
                numbers, else a categorical one, whose values (strings, booleans, None, lists,
                dicts) are written as text and sorted.
            hue: a parameter whose values get a line each.
            logx: a log scale on x (True), a linear one (False); default log when the
                values are positive numbers that span more than two decades.
            logy: a log scale on y (values <= 0 are not drawn on it).
            title: the title; default the experiment's name, the metric, ``x``, ``hue`` and
                the number of runs drawn, e.g. ``"pi: abs_error vs n_samples (40 runs)"``;
                ``""`` for none.
            out: where to save the figure (its folder is made if missing): a PNG, or the
                format its suffix names (``.pdf``, ``.svg``).
            path: deprecated name of ``out``.

        Returns:
            The ``matplotlib.figure.Figure``, made without pyplot: no window is opened and
            pyplot keeps no reference to it. ``figure.savefig(...)`` saves it again.

        Raises:
            ImportError: matplotlib is not installed (the message names ``assay[plot]``).
            KeyError: unknown metric or parameter.
            ValueError: some runs with a value of the metric have no parameter ``x``, or
                ``logx=True`` for values that are not positive numbers.

        """
        if path is not None:
            if out is not None:
                raise TypeError("plot(): got both out= and its deprecated name path=; pass out=")
            warnings.warn(
                "Results.plot(path=...) is deprecated: pass out=...; plot() now returns the "
                "Figure, and saves it only when out= is given",
                DeprecationWarning,
                stacklevel=2,
            )
            out = path
        from . import _plot

        names = self._runs.names()
        figure = _plot.draw(self, metric, x, hue, names=names, logx=logx, logy=logy, title=title)
        if out is not None:
            _plot.save(figure, out)
        return figure


def _check_param(name: str, where: str, names: list[str]) -> None:
    if name not in names:
        raise KeyError(f"{where} = {name!r} is not a parameter; the runs have {names or 'none'}")


def _check_metric(metric: str, where: str, names: list[str]) -> None:
    if metric not in names:
        raise KeyError(f"{where}: no metric {metric!r}; the runs recorded {names or 'none'}")


def _describe(values: list[float]) -> dict[str, Any]:
    """Return mean, sample std and count of ``values`` as pandas' ``agg`` does: NaN skipped.

    A group whose values are all NaN keeps its row (count 0, mean and std NaN), so a point of
    the sweep where every replicate diverged stays visible. An infinite value makes the mean
    infinite (NaN for inf - inf) and the spread unknown (NaN).
    """
    kept = [v for v in values if not math.isnan(v)]
    count = len(kept)
    if not count:
        return {"mean": math.nan, "std": math.nan, "count": 0}
    if all(math.isfinite(v) for v in kept):
        import statistics  # here: loading results (``assay status``) does not need it

        mean = statistics.fmean(kept)
        std = statistics.stdev(kept) if count > 1 else math.nan
    else:  # fmean and stdev refuse infinities: plain float arithmetic gives pandas' answer
        mean, std = sum(kept) / count, math.nan
    return {"mean": mean, "std": std, "count": count}


def _verified(artifact: dict[str, Any], run_id: str) -> Path:
    """Return the path of ``artifact`` once its file matches the recorded size and SHA-256."""
    name, path = artifact.get("name"), artifact.get("path")
    if not isinstance(path, str):
        raise FileNotFoundError(
            f"artifact {name!r} of run {run_id} was not written to a file (the run had no run "
            "folder); expected an artifact of an experiment's run"
        )
    expected, size = artifact.get("sha256"), artifact.get("size")
    digest = hashlib.sha256()
    read = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            read += len(chunk)
    if expected is None or (read, digest.hexdigest()) != (size, expected):
        raise ValueError(
            f"artifact file {path!r} of run {run_id} does not match its record: {read} bytes "
            f"with sha256 {digest.hexdigest()}, expected {size} bytes with sha256 {expected} "
            "as the run wrote it; the file was changed or damaged since: run the run again "
            "(assay reproduce keeps a fresh copy) rather than reading this file"
        )
    return Path(path)


def count_runs(n: int) -> str:
    """Return ``"1 run"`` or ``"<n> runs"``.

    Examples:
        >>> count_runs(1), count_runs(3)
        ('1 run', '3 runs')

    """
    return "1 run" if n == 1 else f"{n} runs"


def _moved(record: RunRecord, runs: str) -> RunRecord:
    """Point a record's run folder and artifact paths into ``runs``, where the run is now.

    A run records the absolute path of its folder, ``<experiment>/runs/<run id>``; after the
    experiment folder was moved or copied (laptop to cluster), the recorded paths lead to the
    old place, where an old copy may still sit. The run's folder is the anchor: paths inside
    it are moved along; anything else is kept as recorded.
    """
    recorded = record.runtime.get("run_dir")
    here = f"{runs}{os.sep}{record.run_id}"
    tail = f"{os.sep}{RUNS}{os.sep}{record.run_id}"
    if not isinstance(recorded, str) or recorded == here or not recorded.endswith(tail):
        return record
    inside = recorded + os.sep
    artifacts = [
        {**artifact, "path": here + artifact["path"][len(recorded) :]}
        if isinstance(artifact.get("path"), str) and artifact["path"].startswith(inside)
        else artifact
        for artifact in record.artifacts
    ]
    runtime = {**record.runtime, "run_dir": here}
    return dataclasses.replace(record, runtime=runtime, artifacts=artifacts)


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# ---------------------------------------------------------------- the runs a Results holds


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
