"""A search's pruning: the runs' streamed values reported to their trials, Optuna's pruner asked.

``TrialPruner`` is the ``Pruner`` (see ``_follow``) of a batch of trials: each value a run
streams of the search's metric becomes an intermediate value of the run's trial (so the study
keeps every trial's curve), and whether a run stops is the study's pruner's answer for its
trial. It is called from the runs' threads (inline, a thread pool) and from the thread that
follows other processes' streams, so one lock guards the study.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any


class TrialPruner:
    """Report a batch's streamed values to its trials; answer with the study's pruner.

    Args:
        metric: the search's metric (other metrics are not the trial's to report).
        trials: the ``optuna.Trial`` of each run, by run id.

    """

    def __init__(self, metric: str, trials: Mapping[str, Any]) -> None:
        self.metric = metric
        self._trials = dict(trials)
        self._steps: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
        """Report ``value`` at ``step`` to the run's trial (once per step; NaN is skipped)."""
        trial = self._trials.get(run_id)
        if name != self.metric or trial is None or math.isnan(value):
            return
        with self._lock:
            steps = self._steps.setdefault(run_id, set())
            at = len(steps) if step is None else step  # a value without a step: the next one
            if at in steps:
                return  # Optuna keeps the first value of a step
            steps.add(at)
            trial.report(value, at)

    def should_prune(self, run_id: str) -> bool:
        """Return the study's pruner's answer for the run's trial (False before any value)."""
        trial = self._trials.get(run_id)
        if trial is None or not self._steps.get(run_id):
            return False
        with self._lock:
            return bool(trial.should_prune())

    def finished(self, run_id: str) -> None:
        """Nothing to do: the driver tells the trial how its run ended."""
