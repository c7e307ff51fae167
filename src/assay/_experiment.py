"""Experiment: an operation swept over a parameter space with replicates, resumable.

Each (params, replicate) pair is one run and one cache entry of an ``ExperimentRun``
step, executed by any assay backend. The driver (the process calling ``run()``) plans the
runs, skips those its results index already holds, hands the rest to the backend, and
writes each record into the index as it arrives.

The driver streams: the sweep is a ``SweepPlan`` (packed run ids), the index says which
runs are not complete, runs go to the backend chunk by chunk, and the returned ``Results``
reads its rows from the index when asked. Nothing holds every run of a sweep in memory.
"""

from __future__ import annotations

import datetime
import sys
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from assay_ops import OperationWrapper
from assay_steps import Backend

from ._diffs import store_diff
from ._failures import FailureCount, check_max_failures
from ._folder import CACHE, RUNS
from ._folderpath import check_folder
from ._follow import Pruner
from ._identity import (
    CodeChange,
    _backend,
    _check_importable_in_jobs,
    _check_seed,
    _config_uid,
    _folder_name,
    _mapping,
    _resolve,
    check_stored,
    stale_runs,
    stored_identity,
)
from ._index import ResultsIndex
from ._live_sweep import live_execute
from ._outcomes import RunSummary, call_summary
from ._results import Results
from ._runs import RunSpec, SweepPlan, plan
from ._search import Search
from ._space import ParamSpace, as_space
from ._standing import Standing, merged
from ._sweep_chunks import run_chunks
from ._sweep_jobs import run_jobs, submits_jobs
from ._worker import ExperimentRun

# Resuming a sweep whose runs are all in the index asks the index for its unfinished runs and
# finds them in the sweep by run id, when they are at most this many; more (a sweep barely
# started) are found by SQLite, joining the sweep's run ids with the index.
_FEW_UNFINISHED = 50_000


class Experiment:
    """An operation run over a parameter space × replicates, on any backend, resumable.

    Args:
        name: a name for the experiment (shown in status and progress).
        operation: an ``@operation`` (``OperationWrapper``) or its ref ``"module:name"``; the
            workers import it by its ref.
        params: [`grid`][assay.grid], [`random`][assay.random], [`explicit`][assay.explicit],
            [`search`][assay.search] (adaptive: trials proposed as runs end) or a list of
            dicts; None for one run without parameters.
        replicates: runs per parameter dict, each with its own seed stream.
        seed: the root seed, ``0 <= seed < 2**128`` (default ``assay_ops.DEFAULT_ROOT_SEED``,
            fixed); each run's seeds derive from (seed, params, replicate).
        context: values every run reads from its ``FrozenContext``.
        scope: ``param_scope`` values set around every run (the ``-D key=value`` of the CLI).
        backend: an assay backend (``Cached()``, ``ProcessPool(max_jobs=4)``, ``Slurm(...)``)
            or its dict (``{"backend": "ProcessPool"}``); default inline. Its cache folder is
            ``<folder>/cache``.
        folder: the experiment folder (default ``runs/<name>``).
        progress: show the progress bar; default only on a terminal.
        pruner: stops poor runs early from the values they stream
            (``capture.metric(name, value, step=k)``), e.g. [`MedianRule`][assay.MedianRule];
            a run told to stop ends at its next ``capture.should_prune()`` and is recorded
            ``pruned``. A search takes its pruner as ``search(..., pruner=...)``.

    Raises:
        ValueError, TypeError, ImportError: bad input, before anything runs.

    Examples:
        >>> import tempfile
        >>> from assay import grid
        >>> experiment = Experiment(
        ...     "pi", "assay._demo:estimate_pi", grid(n_samples=[100, 1000]), replicates=2,
        ...     folder=tempfile.mkdtemp(), progress=False)
        >>> results = experiment.run()
        >>> results.counts()
        {'success': 4}

    """

    def __init__(
        self,
        name: str,
        operation: OperationWrapper | str,
        params: ParamSpace | Iterable[Mapping[str, Any]] | None = None,
        *,
        replicates: int = 1,
        seed: int | None = None,
        context: Mapping[str, Any] | None = None,
        scope: Mapping[str, Any] | None = None,
        backend: Backend | Mapping[str, Any] | None = None,
        folder: str | Path | None = None,
        progress: bool | None = None,
        pruner: Pruner | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name = {name!r}; expected a non-empty string")
        self.name = name
        self.operation = _resolve(operation)
        self.seed = _check_seed(seed)
        self.folder = check_folder(
            Path(folder) if folder is not None else Path("runs") / _folder_name(name),
            "folder",
            "a folder for the experiment (an existing one, or where to make it)",
        )
        self.context = _mapping("context", context)
        self.scope = _mapping("scope", scope)
        self.progress = progress
        self.space = as_space(params)
        self.pruner = _check_pruner(pruner, self.space)
        if isinstance(self.space, Search) and replicates != 1:
            raise ValueError(
                f"replicates = {replicates!r}; a search runs each trial once: expected 1"
            )
        self.specs: SweepPlan = plan(self.space, replicates, self.seed)
        self.replicates = replicates
        self.step = ExperimentRun(
            operation=self.operation.ref,
            seed=self.seed,
            context=self.context,
            scope=self.scope,
            infra=_backend(backend, self.folder / CACHE),
        )
        _check_importable_in_jobs(self.operation, self.step.infra)
        # the folder's identity, compared as data (sets in any order, arrays in full)
        self._config = _config_uid(self.step)
        self.last_summary: RunSummary | None = None

    def __repr__(self) -> str:
        return (
            f"Experiment({self.name!r}, {self.operation.ref!r}, {len(self.specs)} runs, "
            f"folder={str(self.folder)!r})"
        )

    # -------------------------------------------------------------- identity

    def _stored_identity(self) -> dict[str, Any]:
        """Return the identity ``run()`` stores in the folder's index."""
        return stored_identity(self)

    def _check_folder(self, stored: dict[str, Any] | None) -> None:
        """Raise unless the identity ``stored`` in the folder's index is this experiment's."""
        check_stored(self, stored)

    # -------------------------------------------------------------- running

    def run(
        self,
        *,
        retry_failed: bool = False,
        on_code_change: CodeChange = "error",
        max_failures: int | None = None,
    ) -> Results:
        """Run every run not complete yet and return the results of the whole sweep.

        Completed runs are skipped (resume). Failed and timed-out runs are kept unless
        ``retry_failed``. When the operation's code changed since runs were recorded,
        ``on_code_change`` decides: ``"error"`` (default) stops before running anything,
        ``"rerun"`` runs them again, ``"keep"`` keeps their results. Ctrl-C stops the sweep,
        records the unfinished runs as ``cancelled`` and keeps every completed one; run again
        to resume.

        The sweep goes on past runs that fail, time out or whose job is cancelled, and
        ``last_summary`` says what they were (printed on a terminal). With ``max_failures``,
        it stops once that many runs failed or timed out in this call: jobs still queued
        are cancelled and the runs left are recorded ``cancelled``, so a plain ``run()``
        resumes them.

        On a backend that submits jobs (``LocalProcess``, ``Slurm``, ``Auto``), every run
        to do is submitted at once and indexed as it lands; other backends get the runs in
        chunks.

        Raises:
            FolderConflictError: the folder belongs to another experiment.
            CodeChangedError: the code changed and ``on_code_change="error"``.
            KeyboardInterrupt: after recording the unfinished runs as cancelled.
            InfrastructureError: the storage failed (a full disk, a quota, an I/O error, a
                read-only file system) writing a run's outputs or the index; the unfinished
                runs stay pending (not failed), and a plain ``run()`` computes them.

        """
        if on_code_change not in ("error", "rerun", "keep"):
            raise ValueError(
                f"on_code_change = {on_code_change!r}; expected 'error', 'rerun' or 'keep'"
            )
        check_max_failures(max_failures)
        if isinstance(self.space, Search):
            return self._search(self.space, on_code_change, max_failures)
        start = time.perf_counter()
        with ResultsIndex(self.folder) as index:
            # checked and stored in one transaction: of two different experiments started
            # together on this folder, exactly one proceeds
            index.claim(self._stored_identity(), self._check_folder)
            # rows changed outside assay and damaged: read back from the cache as pending runs
            index.repair(self.specs)
            state = self._standing(index, retry_failed)
            todo = self._todo(index, state, retry_failed, on_code_change)
            if todo:  # the diff of a dirty tree, once per folder: the records carry its address
                store_diff(self.folder, self.operation)
            count = FailureCount(max_failures)
            executed, cached = live_execute(self, index, todo, count, self.pruner)
            selection = self._selection(index, state)
        results = Results._indexed(self.folder, selection)
        self.last_summary = call_summary(
            results, planned=len(self.specs), executed=executed, cached=cached,
            started=start, count=count, folder=str(self.folder),
        )  # fmt: skip
        self._say_summary()
        return results

    def _search(self, search: Search, policy: CodeChange, max_failures: int | None) -> Results:
        """Run a search (``_search_run``), its batches without bars of their own."""
        from ._best import best_line
        from ._search_run import run_search

        shown, self.progress = self.progress, False
        try:
            results = run_search(self, search, on_code_change=policy, max_failures=max_failures)
        finally:
            self.progress = shown
        self._say_summary()
        line = best_line(self.name, results)
        if self._show() and line is not None:
            print(line, file=sys.stderr)
        return results

    def _say_summary(self) -> None:
        if self._show() and self.last_summary is not None:
            print(self.last_summary.line(self.name), file=sys.stderr)
            for line in self.last_summary.report(self.name):
                print(line, file=sys.stderr)

    def _todo(
        self, index: ResultsIndex, state: Standing, retry_failed: bool, policy: CodeChange
    ) -> array[int]:
        """Plan the sweep's new runs; return the positions of the runs to run, ascending.

        Raises:
            CodeChangedError: runs of another code hash need a decision (``policy``).

        """
        stale = stale_runs(self, index, policy, state.other)
        if state.missing:  # planning is an insert per run: skipped when resuming
            index.plan(self.specs[i] for i in state.missing)
        if state.missing or not state.noted:
            index.note_planned(self.specs.digest)
        retried = state.failed if retry_failed else array("q")
        # failed and stale runs have a cache entry to drop; cancelled ones either finished
        # (their entry is kept and read back) or never wrote one
        self._forget(self.specs[i] for i in merged([retried, *stale]))
        return merged([state.missing, state.pending, retried, *stale])

    def _standing(self, index: ResultsIndex, retry_failed: bool) -> Standing:
        """Return where the sweep's runs stand in the index: the positions of those not complete.

        When the index noted that it holds every run of this sweep, it lists its unfinished
        runs (few, in a sweep being resumed) and they are found in the sweep by run id;
        otherwise SQLite joins the sweep's run ids with the index.
        """
        state = Standing(self.operation.code_hash, retry_failed)
        if index.planned(self.specs.digest):
            found = index.unfinished(state.code_hash, _FEW_UNFINISHED)
            if found is not None:
                return self._placed(state, found)
        index.open_sweep(self.specs.run_ids())
        state.joined = True
        for candidate in index.sweep_candidates(state.code_hash):
            state.add(*candidate)
        return state

    def _placed(self, state: Standing, found: list[tuple[str, str, str | None]]) -> Standing:
        """Count the index's unfinished runs that are runs of the sweep, in planning order."""
        state.noted = True
        where = self._positions({run_id for run_id, _, _ in found})
        for candidate in sorted((where[r], s, h) for r, s, h in found if r in where):
            state.add(*candidate)
        return state

    def _positions(self, run_ids: set[str]) -> dict[str, int]:
        """Return the position in the sweep of each of ``run_ids`` that is one of its runs."""
        if not run_ids:
            return {}
        return {rid: i for i, rid in enumerate(self.specs.run_ids()) if rid in run_ids}

    def _selection(self, index: ResultsIndex, state: Standing) -> Sequence[int]:
        """Return the planning numbers of the sweep's runs, which its ``Results`` holds."""
        if index.count() == len(self.specs):
            # every run of the sweep is in the index, and nothing else: the index is the sweep
            return index.planned_seqs()
        if not state.joined:
            index.open_sweep(self.specs.run_ids())
        return index.sweep_seqs()

    def _show(self) -> bool:
        # The one place that decides whether the bar and the summary line are drawn.
        return sys.stderr.isatty() if self.progress is None else self.progress

    def _items(self, specs: Iterable[RunSpec]) -> list[dict[str, Any]]:
        runs = self._runs_folder()
        return [_item(spec, runs) for spec in specs]

    def _runs_folder(self) -> str:
        return str((self.folder / RUNS).resolve())

    def _forget(self, specs: Iterable[RunSpec]) -> None:
        """Drop the cache entries of runs that must run again (failed or stale)."""
        runs = self._runs_folder()
        for spec in specs:
            self.step.lookup(_item(spec, runs)).clear_cache()

    def _execute(
        self, index: ResultsIndex, todo: Sequence[int], count: FailureCount
    ) -> tuple[int, int]:
        """Run the runs at positions ``todo``, writing outcomes to the index.

        Return (executed, cached). On a backend that submits jobs, every run goes to it at
        once (``run_jobs``); elsewhere the runs go to the backend in chunks (``run_chunks``).
        Either way ``count`` stops the sweep at ``max_failures``, recording the runs left
        ``cancelled``.
        """
        if not todo:
            return 0, 0
        session = datetime.datetime.now(datetime.timezone.utc)
        # what every record's provenance holds (git calls, package versions), computed here
        # once: the workers a pool forks inherit it rather than computing it each
        self.operation.provenance()
        if submits_jobs(self.step.infra):
            return run_jobs(self, index, todo, count, session)
        return run_chunks(self, index, todo, count, session)


def _check_pruner(pruner: Any, space: ParamSpace) -> Pruner | None:
    """Return ``pruner`` checked: None, or an object with the ``Pruner`` methods."""
    if pruner is None:
        return None
    if isinstance(space, Search):
        raise ValueError(
            f"pruner = {pruner!r}: a search takes its pruner as search(..., pruner=...)"
        )
    if not isinstance(pruner, Pruner):
        raise TypeError(
            f"pruner = {pruner!r}; expected an assay.MedianRule, or an object with the methods "
            "report(run_id, name, value, step), should_prune(run_id) and finished(run_id)"
        )
    return pruner


def _item(spec: RunSpec, runs: str) -> dict[str, Any]:
    """Return the step's item of one run: its spec, and the folder of the runs' own folders."""
    return {"run_id": spec.run_id, "params": spec.params, "replicate": spec.replicate, "runs": runs}
