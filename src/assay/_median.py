"""The median rule of early stopping: stop a run whose metric so far is worse than the median."""

from __future__ import annotations

import math
import statistics
import threading
from typing import Any

DIRECTIONS = ("minimize", "maximize")


class MedianRule:
    """Stop a run whose best value so far is worse than the median of the others at its step.

    A run is pruned at step ``k`` (the highest step it has reported) when its best value of
    ``metric`` so far (lowest when minimizing, highest when maximizing) is worse than the
    median of the best values up to step ``k`` of the other runs that reported step ``k``.
    The rule only decides once ``n_startup_runs`` runs have finished and from step
    ``n_warmup_steps`` on; with no other run at step ``k`` it keeps the run. A run whose
    values so far are all NaN is pruned (once the rule decides at all). Once pruned, a run
    stays pruned.

    This is Optuna's ``MedianPruner`` with two differences: the other runs are compared by
    their best value up to step ``k`` (as the run itself is), not their value at step ``k``;
    and they are every other run that reported step ``k``, still running or ended, not only
    the completed ones (a run that finished counts towards ``n_startup_runs`` however it
    ended). A value reported again at a step already reported is ignored; a value without a
    step counts as the next step of its run (0, 1, 2...). Values of other metrics are
    ignored. Thread-safe.

    Args:
        metric: The metric's name, as the operation records it.
        direction: ``"minimize"`` (lower is better) or ``"maximize"``.
        n_startup_runs: Runs that must have finished before any run is pruned.
        n_warmup_steps: Steps before which no run is pruned (the first step that may be
            pruned is ``n_warmup_steps``).

    Raises:
        TypeError: an argument of the wrong type (the message names it and its value).
        ValueError: an empty metric name, an unknown direction or a negative count.

    Examples:
        Two runs finish, then a third is compared with them step by step:

        >>> rule = MedianRule("loss", n_startup_runs=2)
        >>> for run, losses in {"a": [1.0, 0.5, 0.25], "b": [0.9, 0.6, 0.3]}.items():
        ...     for step, loss in enumerate(losses):
        ...         rule.report(run, "loss", loss, step)
        ...     rule.finished(run)
        >>> rule.report("c", "loss", 0.8, 0)  # the median at step 0 is 0.95: keep it
        >>> rule.should_prune("c")
        False
        >>> rule.report("c", "loss", 0.7, 1)  # at step 1, 0.55: its best, 0.7, is worse
        >>> rule.should_prune("c")
        True

    """

    def __init__(
        self,
        metric: str,
        direction: str = "minimize",
        n_startup_runs: int = 5,
        n_warmup_steps: int = 0,
    ) -> None:
        if not isinstance(metric, str):
            raise TypeError(f"MedianRule(metric={metric!r}): expected the metric's name, a str")
        if not metric:
            raise ValueError("MedianRule(metric=''): expected a non-empty metric name")
        if direction not in DIRECTIONS:
            raise ValueError(
                f"MedianRule(direction={direction!r}): expected 'minimize' or 'maximize'"
            )
        for name, value in (("n_startup_runs", n_startup_runs), ("n_warmup_steps", n_warmup_steps)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"MedianRule({name}={value!r}): expected an int >= 0")
            if value < 0:
                raise ValueError(f"MedianRule({name}={value!r}): expected an int >= 0")
        self.metric = metric
        self.direction = direction
        self.n_startup_runs = n_startup_runs
        self.n_warmup_steps = n_warmup_steps
        self._lock = threading.Lock()
        self._values: dict[str, dict[int, float]] = {}  # run -> step -> its first value
        self._best: dict[str, dict[int, float]] = {}  # run -> step -> best value up to it
        self._last: dict[str, int] = {}  # run -> highest step reported
        self._finished: set[str] = set()
        self._pruned: set[str] = set()
        self._changes = 0  # reports and ends so far: a decision holds until this moves
        self._decided: dict[str, tuple[int, bool]] = {}

    def __repr__(self) -> str:
        return (
            f"MedianRule(metric={self.metric!r}, direction={self.direction!r}, "
            f"n_startup_runs={self.n_startup_runs}, n_warmup_steps={self.n_warmup_steps})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
        """Take one value of metric ``name`` of run ``run_id`` at ``step``."""
        if name != self.metric:
            return
        try:
            number = float(value)
        except (TypeError, ValueError):
            return  # a string metric: nothing to compare
        with self._lock:
            values = self._values.setdefault(run_id, {})
            if step is None:
                step = len(values)
            if step in values:
                return
            values[step] = number
            best = self._best.setdefault(run_id, {})
            last = self._last.get(run_id)
            if last is None or step > last:
                best[step] = number if last is None else self._better(best[last], number)
                self._last[run_id] = step
            else:  # a step out of order: the bests after it may change
                running = math.nan
                for at in sorted(values):
                    running = self._better(running, values[at])
                    best[at] = running
            self._changes += 1

    def finished(self, run_id: str) -> None:
        """Note that run ``run_id`` ended (it counts towards ``n_startup_runs``)."""
        with self._lock:
            if run_id not in self._finished:
                self._finished.add(run_id)
                self._changes += 1

    def should_prune(self, run_id: str) -> bool:
        """Return whether run ``run_id`` should stop now."""
        with self._lock:
            if run_id in self._pruned:
                return True
            known = self._decided.get(run_id)
            if known is not None and known[0] == self._changes:
                return known[1]
            answer = self._decide(run_id)
            self._decided[run_id] = (self._changes, answer)
            if answer:
                self._pruned.add(run_id)
            return answer

    def _decide(self, run_id: str) -> bool:
        step = self._last.get(run_id)
        if step is None or step < self.n_warmup_steps:
            return False
        if len(self._finished) < self.n_startup_runs:
            return False
        mine = self._best[run_id][step]
        if math.isnan(mine):
            return True
        others = [
            best[step]
            for other, best in self._best.items()
            if other != run_id and step in best and not math.isnan(best[step])
        ]
        if not others:
            return False
        median = statistics.median(others)
        return mine > median if self.direction == "minimize" else mine < median

    def _better(self, current: float, new: float) -> float:
        """Return the better of two values; NaN only when both are."""
        if math.isnan(current):
            return new
        if math.isnan(new):
            return current
        return min(current, new) if self.direction == "minimize" else max(current, new)
