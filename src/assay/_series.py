"""The whole series of a metric, per run, from the runs' records (``Results.series``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

#: The columns of a series row; a parameter named like one gets the column ``param:<name>``.
OWN = ("run_id", "step", "value")


class _Recorded(Protocol):
    """What a series is read from: a ``RunRecord``'s id, parameters, metrics and their tags."""

    run_id: str
    params: dict[str, Any]
    metrics: dict[str, list[Any]]
    metric_tags: dict[str, list[dict[str, Any]]]


def series_rows(records: Iterable[_Recorded], metric: str) -> list[dict[str, Any]]:
    """Return one row per value of ``metric``: run id, step, value and the run's parameters.

    Rows come in the order of ``records``, then in the order each run recorded its values;
    ``step`` is the step the value was recorded with, None when it had none.

    Raises:
        KeyError: no record has ``metric`` (the message lists the metrics they have).

    Examples:
        >>> from types import SimpleNamespace
        >>> run = SimpleNamespace(
        ...     run_id="r1", params={"lr": 0.1, "step": 2}, metrics={"loss": [0.9, 0.5]},
        ...     metric_tags={"loss": [{"step": 0}, {}]},
        ... )
        >>> series_rows([run], "loss")  # doctest: +NORMALIZE_WHITESPACE
        [{'run_id': 'r1', 'step': 0, 'value': 0.9, 'lr': 0.1, 'param:step': 2},
         {'run_id': 'r1', 'step': None, 'value': 0.5, 'lr': 0.1, 'param:step': 2}]

    """
    rows: list[dict[str, Any]] = []
    names: dict[str, None] = {}  # every metric seen, in order: for the error
    found = False
    for record in records:
        names.update(dict.fromkeys(record.metrics))
        values = record.metrics.get(metric)
        if values is None:
            continue
        found = True
        params = {f"param:{k}" if k in OWN else k: v for k, v in record.params.items()}
        tags = record.metric_tags.get(metric) or []
        for i, value in enumerate(values):
            step = tags[i].get("step") if i < len(tags) else None  # a record without its tags
            rows.append({"run_id": record.run_id, "step": step, "value": value, **params})
    if not found:
        raise KeyError(
            f"series(): no run recorded metric {metric!r}; the runs recorded "
            f"{sorted(names) or 'no metric'}"
        )
    return rows
