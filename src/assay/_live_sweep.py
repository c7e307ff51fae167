"""Runs executed under a pruner: the sweep's backend call inside a ``LiveSession``.

Both a search (its trials' pruner) and a plain sweep with ``Experiment(pruner=...)`` run their
runs this way: the pruner hears every value the runs stream, and a run it stops finds the
decision at its next ``capture.should_prune()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._follow import LiveSession, Pruner

if TYPE_CHECKING:
    from ._experiment import Experiment
    from ._failures import FailureCount
    from ._index import ResultsIndex


def live_execute(
    experiment: Experiment,
    index: ResultsIndex,
    todo: Sequence[int],
    count: FailureCount,
    pruner: Pruner | None,
) -> tuple[int, int]:
    """Run the runs at positions ``todo`` (``Experiment._execute``), under ``pruner`` if any.

    Return (executed, cached). The session reads the streams of runs in other processes (a
    pool, batch jobs) from a thread; runs in this process ask the pruner directly.
    """
    if pruner is None or not todo:
        return experiment._execute(index, todo, count)
    run_ids = [experiment.specs.run_id(i) for i in todo]
    with LiveSession(experiment._runs_folder(), pruner, out_of_process=True) as session:
        session.follow(run_ids)
        try:
            return experiment._execute(index, todo, count)
        finally:
            session.ended(run_ids)
