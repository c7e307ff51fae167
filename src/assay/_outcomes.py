"""What runs came to: a worker's record as a row of the results index, and a call's summary.

A worker hands the driver one JSON text per run (its ``RunRecord``, or the worker's error when
the operation could not start); ``_outcome`` checks that it is the record of that very run
and turns it into the index's row (``Outcome``). ``RunSummary`` says what one
``Experiment.run()`` call did.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from assay_ops import RECORD_FORMAT, RunRecord

from ._failures import FailureNote, failure_lines
from ._results import count_runs
from ._rows import Outcome, job_text
from ._runs import RunSpec
from ._schema import STATUSES
from ._worker import WORKER_ERROR


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
