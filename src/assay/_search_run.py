"""The driver of a search: ask trials, run them as the experiment's runs, tell their metrics.

Each batch of trials becomes a small sweep of the experiment: its runs are planned in the
index, run on the backend like any sweep's (inline, a pool or jobs; the cache serves runs
computed before), and indexed; then every trial of the batch is told its run's outcome, in
trial-number order. A trial asked but never told (the driver was killed) is run again by the
next driver: its run comes from the cache when it had finished, so no trial is lost and
none is computed twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._diffs import store_diff
from ._failures import FailureCount, check_max_failures
from ._index import ResultsIndex
from ._live_sweep import live_execute
from ._outcomes import call_summary
from ._results import Results
from ._runs import RunSpec, SweepPlan
from ._study import SearchStudy, parallelism, quiet_optuna
from ._trial_pruner import TrialPruner

if TYPE_CHECKING:
    from ._experiment import Experiment
    from ._identity import CodeChange
    from ._search import Search

#: Statuses of runs that are over: their trial is told, they are not run again.
_ENDED = ("success", "failed", "timeout", "pruned")


@dataclass
class _Tally:
    """What one call of a search did, for its summary line."""

    executed: int = 0
    cached: int = 0


def run_search(
    experiment: Experiment,
    search: Search,
    *,
    on_code_change: CodeChange,
    max_failures: int | None,
) -> Results:
    """Run the trials of ``search`` not finished yet; return the results of all its trials."""
    check_max_failures(max_failures)
    start = time.perf_counter()
    tally = _Tally()
    count = FailureCount(max_failures)
    parallel = search.parallel or parallelism(experiment.step.infra)
    with quiet_optuna(), ResultsIndex(experiment.folder) as index:
        study = SearchStudy(experiment.folder, search, experiment._config, experiment.seed)
        index.claim(experiment._stored_identity(), experiment._check_folder)
        index.set_meta("search", {**search.describe(), "study": study.name})
        study.complete_asked()  # a driver killed while asking left a trial half asked
        _check_code(experiment, index, study, on_code_change)
        store_diff(experiment.folder, experiment.operation)  # the records carry its address
        while not count.reached:
            batch = study.next_batch(parallel)
            if not batch:
                break
            _run_batch(experiment, index, study, batch, count, tally)
        specs = _trial_runs(study)
        index.open_sweep(spec.run_id for spec in specs)
        selection = index.sweep_seqs()
    results = Results._indexed(experiment.folder, selection)
    experiment.last_summary = call_summary(
        results, planned=len(specs), executed=tally.executed, cached=tally.cached,
        started=start, count=count, folder=str(experiment.folder),
    )  # fmt: skip
    return results


def _check_code(
    experiment: Experiment, index: ResultsIndex, study: SearchStudy, policy: CodeChange
) -> None:
    """Apply the code-change policy to the runs of the trials told so far.

    A search cannot rerun told trials (the sampler learnt from their values): ``"rerun"``
    with runs of other code asks for another folder.
    """
    from ._identity import stale_runs

    experiment.specs = SweepPlan([spec.params for spec in _trial_runs(study)], 1)
    index.repair(experiment.specs)
    state = experiment._standing(index, retry_failed=False)
    if state.other and policy == "rerun":
        raise ValueError(
            f"on_code_change = 'rerun': the operation {experiment.operation.ref} changed since "
            "trials of this search were told; a search cannot rerun told trials (its sampler "
            "learnt from them): keep them (on_code_change='keep') or search in another folder"
        )
    stale_runs(experiment, index, policy, state.other)


def _run_batch(
    experiment: Experiment,
    index: ResultsIndex,
    study: SearchStudy,
    batch: list[Any],
    count: FailureCount,
    tally: _Tally,
) -> None:
    """Run the runs of one batch of trials, then tell every trial its outcome."""
    runs, run_ids = _runs_of(study, batch)
    trial_runs = list(zip(batch, run_ids, strict=True))
    experiment.specs = SweepPlan([spec.params for spec in runs.values()], 1)
    index.plan(experiment.specs)
    todo = [i for i, run_id in enumerate(runs) if _status(index, run_id) not in _ENDED]
    pruner = None
    if study.prunes:
        trials = {run_id: trial for trial, run_id in reversed(trial_runs)}  # the first trial's
        pruner = TrialPruner(study.search.metric, trials)
    executed, cached = live_execute(experiment, index, todo, count, pruner)
    tally.executed += executed
    tally.cached += cached
    for trial, run_id in trial_runs:
        found = index.row(run_id)
        if found is None or found[1].status not in _ENDED:
            continue  # cancelled (the sweep stopped): asked again by the next run
        study.tell(trial, found[1].status, found[1].metrics)


def _status(index: ResultsIndex, run_id: str) -> str | None:
    found = index.row(run_id)
    return None if found is None else found[1].status


def _trial_runs(study: SearchStudy) -> list[RunSpec]:
    """Return the runs of the study's trials, each once, in trial order."""
    return list(_runs_of(study, study.study.get_trials(deepcopy=False))[0].values())


def _runs_of(study: SearchStudy, trials: list[Any]) -> tuple[dict[str, RunSpec], list[str]]:
    """Return the runs of ``trials`` by run id, each once, and the run id of each trial.

    Two trials asking the same parameters are one run (one cache entry, one row).
    """
    runs: dict[str, RunSpec] = {}
    run_ids = []
    for trial in trials:
        spec = RunSpec.of(study.params(trial), 0)
        runs.setdefault(spec.run_id, spec)
        run_ids.append(spec.run_id)
    return runs, run_ids
