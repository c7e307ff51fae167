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

import contextlib
import datetime
import heapq
import json
import os
import sys
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from assay_context import MAX_NESTING, nesting_depth
from assay_ops import (
    DEFAULT_ROOT_SEED,
    RECORD_FORMAT,
    CodeFingerprint,
    OperationWrapper,
    RunRecord,
    code_hash,
    import_operation,
    is_infrastructure_error,
)
from assay_steps import UID_ENCODING, Backend, CodeChangedError

from ._failures import FailureCount, FailureNote, check_max_failures, failure_lines, first_failures
from ._folder import CACHE, RUNS
from ._folderpath import check_folder
from ._index import STATUSES, Outcome, ResultsIndex, job_text
from ._infrastructure import InfrastructureError
from ._interrupt import STOP_REQUESTED
from ._progress import SweepProgress
from ._reproduce import store_diff
from ._results import Results, count_runs
from ._runs import RunSpec, SweepPlan, plan
from ._space import ParamSpace, as_space
from ._sweep_jobs import JobSweep, submits_jobs
from ._worker import WORKER_ERROR, ExperimentRun

CodeChange = Literal["error", "rerun", "keep"]
# Index meta key of the code fingerprint (to_dict) of each code hash runs started with.
_CODE_META = "code_fingerprint:"

# Runs go to the backend in chunks of at least _MIN_CHUNK runs (enough to fill the workers of a
# pool), doubled while a chunk takes under _FAST seconds (multiplied by 8 under _FAST / 8: each
# chunk costs a flush of the cache and a transaction of the index), halved over _SLOW.
_MIN_CHUNK = max(8, 2 * (os.cpu_count() or 1))
_MAX_CHUNK = 4096
_FAST, _SLOW = 0.25, 2.0

# Resuming a sweep whose runs are all in the index asks the index for its unfinished runs and
# finds them in the sweep by run id, when they are at most this many; more (a sweep barely
# started) are found by SQLite, joining the sweep's run ids with the index.
_FEW_UNFINISHED = 50_000


def _next_size(size: int, seconds: float) -> int:
    if seconds < _FAST / 8:
        return min(size * 8, _MAX_CHUNK)
    if seconds < _FAST:
        return min(size * 2, _MAX_CHUNK)
    if seconds > _SLOW:
        return max(size // 2, _MIN_CHUNK)
    return size


class FolderConflictError(ValueError):
    """The experiment folder belongs to another experiment (operation, seed or context differ)."""


@dataclass(frozen=True)
class RunSummary:
    """What one ``Experiment.run()`` call did.

    Attributes:
        planned: runs in the sweep.
        skipped: runs already complete in the index (not handed to the backend).
        executed: runs handed to the backend.
        cached: of those, runs the backend served from its cache.
        failed: runs of the sweep that failed (after this call).
        seconds: wall-clock duration of the call.
        timeout: runs of the sweep whose job reached its time limit (after this call).
        cancelled: runs of the sweep cancelled (their job cancelled, or the sweep stopped).
        failures: the first few runs of the sweep that did not succeed, with their errors.
        stopped: why the call stopped before running every run (``max_failures``), or None.
        folder: the experiment folder (named by the command that lists every failure).

    """

    planned: int
    skipped: int
    executed: int
    cached: int
    failed: int
    seconds: float
    timeout: int = 0
    cancelled: int = 0
    failures: tuple[FailureNote, ...] = ()
    stopped: str | None = None
    folder: str = "."

    @property
    def from_cache(self) -> int:
        """Runs completed without running the operation (index or cache hits)."""
        return self.skipped + self.cached

    def line(self, name: str) -> str:
        """Describe the call in one line, as printed after a sweep of experiment ``name``.

        Examples:
            >>> RunSummary(4, 1, 3, 0, 1, 0.25).line("pi")
            'pi: 4 runs: 3 ran, 1 from cache, 1 failed, in 0.25 s'
            >>> RunSummary(1, 1, 0, 0, 0, 0.002).line("pi")
            'pi: 1 run: all from cache in 0.002 s'

        """
        if self.from_cache == self.planned:
            return f"{name}: {count_runs(self.planned)}: all from cache in {self.seconds:.3f} s"
        more = "".join(
            f", {n} {status}"
            for status, n in (("timeout", self.timeout), ("cancelled", self.cancelled))
            if n
        )
        return (
            f"{name}: {count_runs(self.planned)}: {self.executed - self.cached} ran, "
            f"{self.from_cache} from cache, {self.failed} failed{more}, in {self.seconds:.2f} s"
        )

    def report(self, name: str) -> list[str]:
        """Return the lines that summarise the runs that did not succeed (none if all did).

        Counts by status, the first few errors with their run ids, why the sweep stopped
        early (``max_failures``), and the command that lists every such run.

        Examples:
            >>> RunSummary(4, 0, 4, 0, 1, 0.5, folder="runs/pi").report("pi")[0]
            'pi: 1 run did not succeed: 1 failed'

        """
        counts = {"failed": self.failed, "timeout": self.timeout, "cancelled": self.cancelled}
        return failure_lines(name, counts, self.failures, self.folder, self.stopped)


class Experiment:
    """An operation run over a parameter space × replicates, on any backend, resumable.

    Args:
        name: a name for the experiment (shown in status and progress).
        operation: an ``@operation`` (``OperationWrapper``) or its ref ``"module:name"``; the
            workers import it by its ref.
        params: [`grid`][assay.grid], [`random`][assay.random], [`explicit`][assay.explicit] or a
            list of dicts; None for one run without parameters.
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

    def _identity(self) -> dict[str, Any]:
        return {
            "operation": self.operation.ref,
            "seed": self.seed,
            "context": _jsonable(self.context),
            "scope": _jsonable(self.scope),
        }

    def _stored_identity(self) -> dict[str, Any]:
        """Return the identity ``run()`` stores in the folder's index."""
        return {
            "name": self.name,
            **self._identity(),
            "config": self._config,
            "encoding": UID_ENCODING,
        }

    def _check_folder(self, stored: dict[str, Any] | None) -> None:
        """Raise unless the identity ``stored`` in the folder's index is this experiment's."""
        if stored is None or stored.get("config") == self._config:
            return
        # A folder written by an older uid encoding holds another config uid for the same
        # experiment: it is compared on the printed identity alone (as below), then adopted.
        older = stored.get("encoding", 2) != UID_ENCODING
        # Another experiment: the printed identity names what differs. (Folders made before
        # the identity held the step's uid are compared on the printed form alone.)
        where = f"folder {str(self.folder)!r} belongs to experiment {stored.get('name')!r}"
        for key, value in self._identity().items():
            if stored.get(key) != value:
                raise FolderConflictError(
                    f"{where} with {key} = {stored.get(key)!r}, not {value!r}; use another folder"
                )
        if "config" in stored and not older:
            raise FolderConflictError(
                f"{where}, whose operation, seed, context and scope print the same but differ "
                "as data (a large array prints abbreviated, or a file that a Path names changed, "
                "for instance); use another folder"
            )

    def _stale(
        self, index: ResultsIndex, policy: CodeChange, other_code: dict[str, array[int]]
    ) -> list[array[int]]:
        """Return the positions of runs of another code hash to rerun; raise if undecided.

        ``other_code`` holds the finished runs of the sweep recorded with another code hash,
        by that hash (the failed ones are left out when retried anyway: there is nothing of
        theirs to keep or rerun). A decision to keep such runs holds for the current code:
        later runs of it do not ask again (``"rerun"`` still reruns them), while code that
        changes again asks about every run of other code.
        """
        current = self.operation.code_hash
        if not current:  # source unavailable: nothing to compare
            return []
        if index.get_meta(_CODE_META + current) is None:  # what this code is, for later
            index.set_meta(_CODE_META + current, self.operation.code_fingerprint.to_dict())
        other = other_code
        # hashes whose results were kept for this very code: "keep" is decided once per code
        kept = index.get_meta("kept_code", {}).get(current, [])
        if other and policy == "keep":
            index.set_meta("kept_code", {current: sorted({*kept, *other})})
        if policy == "error":
            other = {h: positions for h, positions in other.items() if h not in kept}
        if other and policy == "error":
            old = min(other, key=lambda h: other[h][0])  # of the run planned first
            count = sum(len(positions) for positions in other.values())
            runs = "1 run was" if count == 1 else f"{count} runs were"
            raise CodeChangedError(
                f"operation {self.operation.ref} changed since {runs} recorded "
                f"(code hash {old} -> {current}){self._code_changes(index, old)}"
            )
        return list(other.values()) if policy == "rerun" else []

    def _code_changes(self, index: ResultsIndex, old: str) -> str:
        """Say what changed since code hash ``old``, function by function, with file:line."""
        stored = index.get_meta(_CODE_META + old)
        try:
            before = CodeFingerprint.from_dict(stored) if stored is not None else None
        except ValueError:
            before = None
        if before is None and old == code_hash(self.operation.func):
            # An older assay hashed the operation's own body only: that much is checkable.
            return (
                "; its runs were recorded by an older version of assay, whose code hash covered "
                "the operation's own body only: that body is unchanged, but the functions it "
                "calls could not be checked then (keep the runs if you know they did not change)"
            )
        if before is None:
            return (
                f"; what changed is not known: the fingerprint of code hash {old} is not stored "
                "(its runs were recorded by an older version of assay)"
            )
        lines = self.operation.code_fingerprint.changes(before)
        if len(lines) > 20:
            lines = [*lines[:20], f"and {len(lines) - 20} more changes"]
        return "".join(f"; {line}" for line in lines)

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
            executed, cached = self._execute(index, todo, count)
            selection = self._selection(index, state)
        results = Results._indexed(self.folder, selection)
        counts = results.counts()
        bad = any(counts.get(status) for status in ("failed", "timeout", "cancelled"))
        self.last_summary = RunSummary(
            planned=len(self.specs),
            skipped=len(self.specs) - len(todo),
            executed=executed,
            cached=cached,
            failed=counts.get("failed", 0),
            seconds=time.perf_counter() - start,
            timeout=counts.get("timeout", 0),
            cancelled=counts.get("cancelled", 0),
            failures=first_failures(results) if bad else (),
            stopped=count.reason() if count.reached else None,
            folder=str(self.folder),
        )
        if self._show():
            print(self.last_summary.line(self.name), file=sys.stderr)
            for line in self.last_summary.report(self.name):
                print(line, file=sys.stderr)
        return results

    def _todo(
        self, index: ResultsIndex, state: _Standing, retry_failed: bool, policy: CodeChange
    ) -> array[int]:
        """Plan the sweep's new runs; return the positions of the runs to run, ascending.

        Raises:
            CodeChangedError: runs of another code hash need a decision (``policy``).

        """
        stale = self._stale(index, policy, state.other)
        if state.missing:  # planning is an insert per run: skipped when resuming
            index.plan(self.specs[i] for i in state.missing)
        if state.missing or not state.noted:
            index.note_planned(self.specs.digest)
        retried = state.failed if retry_failed else array("q")
        # failed and stale runs have a cache entry to drop; cancelled ones either finished
        # (their entry is kept and read back) or never wrote one
        self._forget(self.specs[i] for i in _merged([retried, *stale]))
        return _merged([state.missing, state.pending, retried, *stale])

    def _standing(self, index: ResultsIndex, retry_failed: bool) -> _Standing:
        """Return where the sweep's runs stand in the index: the positions of those not complete.

        When the index noted that it holds every run of this sweep, it lists its unfinished
        runs (few, in a sweep being resumed) and they are found in the sweep by run id;
        otherwise SQLite joins the sweep's run ids with the index.
        """
        state = _Standing(self.operation.code_hash, retry_failed)
        if index.planned(self.specs.digest):
            found = index.unfinished(state.code_hash, _FEW_UNFINISHED)
            if found is not None:
                return self._placed(state, found)
        index.open_sweep(self.specs.run_ids())
        state.joined = True
        for candidate in index.sweep_candidates(state.code_hash):
            state.add(*candidate)
        return state

    def _placed(self, state: _Standing, found: list[tuple[str, str, str | None]]) -> _Standing:
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

    def _selection(self, index: ResultsIndex, state: _Standing) -> Sequence[int]:
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
        once (``JobSweep``). Elsewhere the runs go to the backend in chunks, so that the
        progress bar and the index advance while the sweep runs; chunks grow while they
        finish quickly, which keeps the per-call overhead of the backend negligible for tiny
        runs. Only the chunk at hand is made into specs and items. Either way ``count``
        stops the sweep at ``max_failures``, recording the runs left ``cancelled``.
        """
        if not todo:
            return 0, 0
        session = datetime.datetime.now(datetime.timezone.utc)
        if submits_jobs(self.step.infra):
            return self._execute_jobs(index, todo, count, session)
        chunk: list[RunSpec] = []
        done = 0  # the runs of todo[:done] are stored
        cancelled = kept = 0
        size = _MIN_CHUNK
        # Inline, a chunk stops at the run that reaches max_failures; a pool keeps its
        # workers busy and stops after the chunk in which it was reached.
        pooled = "max_jobs" in getattr(type(self.step.infra), "model_fields", {})
        with SweepProgress(len(todo), enabled=self._show(), label=self.name) as bar:
            try:
                while done < len(todo):
                    if STOP_REQUESTED.is_set():  # a Ctrl-C whose exception was swallowed
                        raise KeyboardInterrupt
                    if count.reached:
                        left = (self.specs.run_id(i) for i in todo[done:])
                        index.mark_ended((r, "cancelled", count.reason(), None) for r in left)
                        break
                    allowed = count.left()
                    take = size if allowed is None else min(size, max(allowed, 1))
                    if pooled and allowed is not None:
                        take = max(take, min(size, _MIN_CHUNK))
                    chunk = [self.specs[i] for i in todo[done : done + take]]
                    began = time.perf_counter()
                    outcomes = self._run_chunk(chunk, bar, session)
                    index.store(outcomes)
                    for outcome in outcomes:
                        count.add(outcome.status)
                    done, chunk = done + len(chunk), []
                    size = _next_size(size, time.perf_counter() - began)
            except KeyboardInterrupt:
                salvaged = self._salvage(index, chunk)
                kept = len(salvaged)
                cancelled = self._mark_left(index, todo, done, salvaged, "cancelled")
            except Exception as error:
                if is_infrastructure_error(error):  # a full disk: no run's outcome
                    raise self._storage_failed(index, todo, done, chunk, error) from error
                # The backend failed (a worker killed, a job cancelled or timed out): the
                # unfinished runs are not still to start; record them like an interruption.
                salvaged = self._salvage(index, chunk)
                self._mark_left(index, todo, done, salvaged, "cancelled")
                raise
        if cancelled:  # said after the bar has stopped, so the line stays readable
            print(
                f"{self.name}: interrupted; {done + kept} runs completed and kept, "
                f"{cancelled} cancelled; run again to resume",
                file=sys.stderr,
            )
            raise KeyboardInterrupt
        return len(todo), bar.cached

    def _execute_jobs(
        self,
        index: ResultsIndex,
        todo: Sequence[int],
        count: FailureCount,
        session: datetime.datetime,
    ) -> tuple[int, int]:
        """Run the runs at positions ``todo`` on a backend that submits jobs (``JobSweep``)."""
        with SweepProgress(len(todo), enabled=self._show(), label=self.name) as bar:
            sweep = JobSweep(self, index, bar, session, count)
            try:
                sweep.run(todo)
            except OSError as error:
                if not is_infrastructure_error(error):
                    raise
                kept = f"{sweep.completed} completed and kept, the others left pending"
                raise self._storage_stopped(error, kept) from error
        if sweep.interrupted:  # said after the bar has stopped, so the line stays readable
            print(
                f"{self.name}: interrupted; {sweep.completed} runs completed and kept, "
                f"{sweep.cancelled} cancelled; run again to resume",
                file=sys.stderr,
            )
            raise KeyboardInterrupt
        return len(todo), bar.cached

    def _run_chunk(
        self, chunk: list[RunSpec], bar: SweepProgress, session: datetime.datetime
    ) -> list[Outcome]:
        """Run one chunk on the backend; return its outcomes, counted on the bar."""
        batch = []
        take = self.step.take_record
        misplaced = []
        for spec, text in zip(chunk, self.step.run_many(self._items(chunk)), strict=True):
            try:
                outcome, ended = _outcome(spec, text, take(spec.run_id, text))
            except _OtherRunError:
                misplaced.append(spec)
                continue
            batch.append(outcome)
            bar.advance(outcome.status, cached=ended is not None and ended < session)
        if misplaced:  # entries holding another run's record: computed again
            self._forget(misplaced)
            for spec, text in zip(
                misplaced, self.step.run_many(self._items(misplaced)), strict=True
            ):
                outcome, _ = _outcome(spec, text, take(spec.run_id, text))
                batch.append(outcome)
                bar.advance(outcome.status, cached=False)
        self.step.drop_records()
        return batch

    def _mark_left(
        self, index: ResultsIndex, todo: Sequence[int], done: int, kept: list[str], status: str
    ) -> int:
        """Mark the runs of ``todo[done:]`` not in ``kept`` with ``status``; return how many.

        ``kept`` are the runs of the chunk at hand that were stored (salvaged).
        """
        stored = set(kept)
        left = (self.specs.run_id(i) for i in todo[done:])
        index.mark((run_id for run_id in left if run_id not in stored), status)
        return len(todo) - done - len(stored)

    def _storage_failed(
        self,
        index: ResultsIndex,
        todo: Sequence[int],
        done: int,
        chunk: list[RunSpec],
        error: OSError,
    ) -> InfrastructureError:
        """Keep the runs that finished, leave the others pending; return the error to raise.

        The storage failing (a full disk, a quota, an I/O error) is no run's outcome: a run it
        stopped is neither failed nor cancelled but still to do, and a plain ``run()`` computes
        it once the storage is fixed (a failed run being retried had its entry dropped: it is
        pending again too). The index may be on the full disk itself: what cannot be written
        there now is read back from the cache, or computed, by that next run.
        """
        salvaged: list[str] = []
        with contextlib.suppress(Exception):  # best effort: the storage error is the news
            salvaged = self._salvage(index, chunk)
        left = len(todo) - done - len(salvaged)
        with contextlib.suppress(Exception):
            self._mark_left(index, todo, done, salvaged, "pending")
        return self._storage_stopped(
            error, f"{done + len(salvaged)} completed and kept, {left} left pending"
        )

    def _storage_stopped(self, error: OSError, kept: str) -> InfrastructureError:
        """Return the error that says the storage stopped the sweep, and what ``kept`` says."""
        what = (
            str(error)  # the index's own error names it and the folder
            if isinstance(error, InfrastructureError)
            else f"the storage of experiment folder {str(self.folder)!r} failed: {error}"
        )
        return InfrastructureError(
            error.errno,
            f"{self.name}: stopped: {what}; this is not a failure of the runs: {kept}; free "
            "space (or fix the file system) and run again: a plain run completes them",
            error.filename,
        )

    def _salvage(self, index: ResultsIndex, chunk: list[RunSpec]) -> list[str]:
        """Index the runs of an interrupted chunk that completed; return their run ids.

        The backend wrote their cache entries before the chunk was stopped, so they are kept
        (and counted as kept) rather than marked cancelled and read back on the next run.
        """
        outcomes = []
        for spec, item in zip(chunk, self._items(chunk), strict=True):
            handle = self.step.lookup(item)
            if handle.status != "success":
                continue
            try:
                text = handle.result()
                outcomes.append(_outcome(spec, text, self.step.take_record(spec.run_id, text))[0])
            except (RuntimeError, ValueError, KeyError, TypeError):
                continue  # unreadable: left to the next run, which recomputes or rereads it
        self.step.drop_records()
        index.store(outcomes)
        return [o.run_id for o in outcomes]


@dataclass
class _Standing:
    """Where the runs of a sweep stand in the index, by position in the sweep (ascending).

    Attributes:
        code_hash: the operation's current code hash ("" when unknown).
        retry_failed: failed runs run again (so they are not stale: they rerun anyway).
        missing: runs not in the index.
        pending: runs pending or cancelled.
        failed: runs that failed or timed out.
        other: finished runs recorded with another code hash, by that hash.
        noted: the index noted that it holds every run of the sweep.
        joined: the sweep's run ids were loaded into the index's connection.

    """

    code_hash: str
    retry_failed: bool
    missing: array[int] = field(default_factory=lambda: array("q"))
    pending: array[int] = field(default_factory=lambda: array("q"))
    failed: array[int] = field(default_factory=lambda: array("q"))
    other: dict[str, array[int]] = field(default_factory=dict)
    noted: bool = False
    joined: bool = False

    def add(self, position: int, status: str | None, code_hash: str | None) -> None:
        """Count the run at ``position`` (status None: not in the index); call in order."""
        if status is None:
            self.missing.append(position)
            return
        if status in ("pending", "cancelled"):
            self.pending.append(position)
        elif status in ("failed", "timeout"):
            self.failed.append(position)
            if self.retry_failed:
                return
        current = self.code_hash
        if status in ("success", "failed") and current and code_hash and code_hash != current:
            self.other.setdefault(code_hash, array("q")).append(position)


def _merged(parts: Iterable[Sequence[int]]) -> array[int]:
    """Merge ascending sequences of positions into one, each position once."""
    out = array("q")
    for position in heapq.merge(*parts):
        if not out or out[-1] != position:
            out.append(position)
    return out


def _item(spec: RunSpec, runs: str) -> dict[str, Any]:
    """Return the step's item of one run: its spec, and the folder of the runs' own folders."""
    return {"run_id": spec.run_id, "params": spec.params, "replicate": spec.replicate, "runs": runs}


# ---------------------------------------------------------------- helpers


def _resolve(operation: OperationWrapper | str) -> OperationWrapper:
    if isinstance(operation, str):
        return import_operation(operation)
    if not isinstance(operation, OperationWrapper):
        raise TypeError(
            f"operation = {operation!r}; expected an @operation or its ref 'module:name'"
        )
    try:  # workers rebuild the operation from its ref: it must be importable
        import_operation(operation.ref)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(
            f"operation {operation.name!r} cannot be imported by its ref {operation.ref!r} "
            f"({error}); define it at module level of an importable module"
        ) from error
    return operation


def _check_importable_in_jobs(operation: OperationWrapper, backend: Any) -> None:
    # A backend whose class has ``new_interpreter`` (submitit jobs) runs items in a new
    # interpreter, where ``__main__`` is submitit's own module: an operation of the running
    # script cannot be imported there by its ref. Pools fork, or spawn with the script as
    # ``__main__`` again, and find it.
    new = bool(getattr(type(backend), "new_interpreter", False))
    if operation.ref.startswith("__main__:") and new:
        raise ValueError(
            f"operation {operation.name!r} is defined in the script being run (__main__), and "
            f"{type(backend).__name__} jobs import it by its ref in a new interpreter where "
            "that script is not __main__; move the operation into its own module (e.g. "
            "my_ops.py next to the script), import it from there, and run from that folder"
        )


def _folder_name(name: str) -> str:
    """Return ``name`` if it can be the default folder ``runs/<name>``, else raise."""
    if name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(
            f"name = {name!r} cannot name the default folder runs/<name>: expected a single "
            "folder name (no '/', '\\', NUL, not '.' or '..'); or pass folder="
        )
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        raise ValueError(
            f"name = {name!r} cannot be encoded as a folder name "
            f"({sys.getfilesystemencoding()}): pass a name of encodable characters or folder="
        ) from None
    if size > _MAX_NAME_BYTES:
        raise ValueError(
            f"name = {name!r} is {size} bytes in the file system encoding; the default folder "
            f"runs/<name> takes at most {_MAX_NAME_BYTES} bytes: pass a shorter name or folder="
        )
    return name


#: File names take at most 255 bytes (of the file system encoding: 3 a CJK character in UTF-8).
_MAX_NAME_BYTES = 255
#: Root seeds are the entropy of a numpy SeedSequence, whose pool holds 128 bits.
_SEED_LIMIT = 2**128


def _check_seed(seed: int | None) -> int:
    if seed is None:
        return DEFAULT_ROOT_SEED
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _SEED_LIMIT:
        raise ValueError(
            f"seed = {seed!r}; expected an int with 0 <= seed < 2**128 (the entropy of "
            "numpy's SeedSequence that every run's seeds derive from)"
        )
    return seed


def _mapping(label: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{label} = {value!r}; expected a mapping of names to values")
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{label}: key {key!r} is a {type(key).__name__}; expected str")
        depth = nesting_depth(item)
        if depth is None:
            raise ValueError(f"{label}[{key!r}] contains itself; expected data")
        if depth > MAX_NESTING:
            raise ValueError(
                f"{label}[{key!r}] is nested {depth} levels deep; expected at most "
                f"{MAX_NESTING} levels of nested containers"
            )
    return dict(value)


def _config_uid(step: ExperimentRun) -> str:
    """Return the uid of the experiment's step: a canonical digest of what its runs share.

    It hashes the operation's ref, the root seed, the context and the scope as data (the cache
    keys its entries under it), so it is the folder's identity. A value it cannot hash is
    refused here, naming its key, before the folder is made.
    """
    probe = {"run_id": "identity"}
    try:
        return step.lookup(probe).paths.step_uid
    except TypeError as error:
        for label in ("context", "scope"):
            for key, value in getattr(step, label).items():
                alone = step.model_copy(update={"context": {}, "scope": {}, label: {key: value}})
                try:
                    _ = alone.lookup(probe).paths.step_uid
                except TypeError:
                    raise TypeError(
                        f"{label}[{key!r}] = {value!r:.80} is a {type(value).__name__}; "
                        f"expected data the experiment can hash into its identity: {_KEYABLE}"
                    ) from error
        raise


_KEYABLE = (
    "None, bool, int, float, complex, str, bytes, tuple, list, dict, set, frozenset, Path, "
    "Enum, date/time/timedelta, Decimal, UUID, a numpy array or scalar, or a pydantic model"
)


def _jsonable(value: Any) -> Any:
    # the folder's identity is compared as JSON; repr stands in for values JSON cannot hold
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def _backend(backend: Backend | Mapping[str, Any] | None, cache: Path) -> Backend:
    """Return the backend with its cache folder set to the experiment's cache folder."""
    if backend is None:
        backend = {"backend": "Cached"}
    if isinstance(backend, Mapping):
        data = dict(backend)
        data.setdefault("backend", "Cached")
        folder = data.get("folder")
        built = Backend.model_validate({**data, "folder": folder or cache})
    elif isinstance(backend, Backend):
        folder = backend.folder
        built = backend.model_copy(update={"folder": folder or cache})
    else:
        raise TypeError(
            f"backend = {backend!r}; expected an assay backend or its dict "
            "(e.g. {'backend': 'ProcessPool'})"
        )
    if "on_code_change" not in built.model_fields_set:
        # The experiment decides about code changes itself, run by run, from its index (the
        # on_code_change of run()); its own step's cache follows that decision.
        built = built.model_copy(update={"on_code_change": "rerun"})
    if "progress" in type(built).model_fields and "progress" not in built.model_fields_set:
        # the experiment draws its own bar over the whole sweep
        built = built.model_copy(update={"progress": False})
    if folder is not None and Path(folder).resolve() != cache.resolve():
        raise ValueError(
            f"backend folder = {str(folder)!r}; an experiment keeps its cache in "
            f"{str(cache)!r}: leave the backend's folder unset"
        )
    return built


def _outcome(
    spec: RunSpec, text: str, record: RunRecord | None = None
) -> tuple[Outcome, datetime.datetime | None]:
    """Turn a worker's JSON into an index row, and when the run ended (None if unknown).

    ``record`` is the run's record when this process computed it: then the JSON text is not
    parsed again.
    """
    if record is not None:
        _check_run(spec, record.run_id)
        lasts = {name: values[-1] for name, values in record.metrics.items() if values}
        error = None if record.error is None else (record.error.type, record.error.message)
        return _row(spec, text, record.status, lasts, record.duration, error,
                    record.code_hash, record.ended_at, _job(record.runtime))  # fmt: skip
    data = json.loads(text)
    if WORKER_ERROR in data:
        failure = data[WORKER_ERROR]
        _check_run(spec, failure.get("run_id", spec.run_id))
        message = f"{failure['type'].rpartition('.')[2]}: {failure['message']}"
        outcome = Outcome(spec.run_id, "failed", {}, None, message, None, text, _job(failure))
        return outcome, None
    if data.get("format") != RECORD_FORMAT or not data.keys() >= _RECORD_KEYS:
        RunRecord.from_dict(data)  # raises the record's own error naming what is wrong
    _check_run(spec, data["run_id"])
    # Read from the JSON form directly: a RunRecord would be built only to be dropped.
    # Plain last values are the values themselves; tagged ones (numpy scalars, non-finite
    # floats, arrays) are decoded the record's way.
    decoded: RunRecord | None = None
    lasts = {}
    for name, values in data["metrics"].items():
        if values:
            last = values[-1]
            if type(last) not in _PLAIN:
                decoded = decoded or RunRecord.from_dict(data)
                last = decoded.metrics[name][-1]
            lasts[name] = last
    info = data["error"]
    error = None if info is None else (info["type"], info["message"])
    return _row(spec, text, data["status"], lasts, data["duration"], error,
                data["code_hash"], data["ended_at"], _job(data.get("runtime")))  # fmt: skip


def _job(runtime: Any) -> str | None:
    """Return the index's text of the job a run ran in, from its record's runtime (or None).

    The runtime (or a worker's error) names the job (``"job"``) and its logs (``"logs"``:
    stdout and stderr paths) when the run ran in a batch job.
    """
    if not isinstance(runtime, Mapping):
        return None
    job, logs = runtime.get("job"), runtime.get("logs")
    if not isinstance(logs, Mapping):
        logs = {}
    out, err = logs.get("stdout"), logs.get("stderr")
    return job_text(
        job if isinstance(job, str) else None,
        out if isinstance(out, str) else None,
        err if isinstance(err, str) else None,
    )


class _OtherRunError(ValueError):
    """A run's cache entry holds the record of another run (a misplaced entry)."""


def _check_run(spec: RunSpec, run_id: object) -> None:
    """Raise unless a record handed back for ``spec`` is the record of that very run."""
    if run_id != spec.run_id:
        raise _OtherRunError(
            f"the cache entry of run {spec.run_id} (params {spec.params!r}, replicate "
            f"{spec.replicate}) holds the record of run {run_id!r}; expected its own record"
        )


def _row(
    spec: RunSpec,
    text: str,
    status: str,
    lasts: dict[str, Any],
    duration: float,
    error: tuple[str, str] | None,
    code_hash: str,
    ended_at: str,
    job: str | None = None,
) -> tuple[Outcome, datetime.datetime]:
    if status not in _FINAL:
        raise ValueError(f"run record status = {status!r}; expected one of {_FINAL}")
    metrics = {}
    for name, last in lasts.items():
        value = _scalar(last)
        if value is not None:
            metrics[name] = value
    message = None if error is None else f"{error[0].rpartition('.')[2]}: {error[1]}"
    ended = datetime.datetime.fromisoformat(ended_at)
    if ended.tzinfo is None:
        ended = ended.replace(tzinfo=datetime.timezone.utc)
    return Outcome(spec.run_id, status, metrics, duration, message, code_hash, text, job), ended


_RECORD_KEYS = frozenset(RunRecord.__dataclass_fields__)
_FINAL = tuple(s for s in STATUSES if s != "pending")
_PLAIN = frozenset({int, float, str, bool})


def _scalar(value: Any) -> Any:
    """Return the value if the index can hold it as a metric (number or string), else None."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()  # numpy scalars
    if isinstance(value, (bool, int, float, str)):
        return value
    return None
