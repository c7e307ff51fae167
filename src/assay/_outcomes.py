"""What runs came to: a worker's record as a row of the results index, and a call's summary.

A worker hands the driver one JSON text per run, its ``RunRecord`` (a ``failed`` one when the
operation could not even start); ``_outcome`` checks that it is the record of that very run
and turns it into the index's row (``Outcome``). Older versions handed a marker instead of a
record when the operation could not start: ``_legacy_worker_error``, the one place that knows
that form, turns it into the record. ``RunSummary`` says what one ``Experiment.run()`` call
did.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from assay_ops import RECORD_FORMAT, ErrorInfo, RunRecord

from ._failures import FailureCount, FailureNote, failure_lines, first_failures
from ._results import Results, count_runs
from ._rows import Outcome, RunRow, job_text
from ._runs import RunSpec
from ._schema import STATUSES
from ._worker import failed_start


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
        pruned: runs of the sweep stopped early by their pruner (after this call); not
            failures.

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
    pruned: int = 0

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
            for status, n in (
                ("timeout", self.timeout),
                ("cancelled", self.cancelled),
                ("pruned", self.pruned),
            )
            if n
        )
        return (
            f"{name}: {count_runs(self.planned)}: {self.executed - self.cached} ran, "
            f"{self.from_cache} from cache, {self.failed} failed{more}, in {self.seconds:.2f} s"
        )

    def report(self, name: str) -> list[str]:
        """Return the lines that call_summary the runs that did not succeed (none if all did).

        Counts by status, the first few errors with their run ids, why the sweep stopped
        early (``max_failures``), and the command that lists every such run.

        Examples:
            >>> RunSummary(4, 0, 4, 0, 1, 0.5, folder="runs/pi").report("pi")[0]
            'pi: 1 run did not succeed: 1 failed'

        """
        counts = {"failed": self.failed, "timeout": self.timeout, "cancelled": self.cancelled}
        return failure_lines(name, counts, self.failures, self.folder, self.stopped)


def call_summary(
    results: Results,
    *,
    planned: int,
    executed: int,
    cached: int,
    started: float,
    count: FailureCount,
    folder: str,
) -> RunSummary:
    """Return the summary of one call that ran ``executed`` runs of ``planned``.

    The counts by status are those of ``results`` (the whole sweep, after the call);
    ``started`` is the call's ``time.perf_counter()`` at its start.
    """
    counts = results.counts()
    bad = any(counts.get(status) for status in ("failed", "timeout", "cancelled"))
    return RunSummary(
        planned=planned,
        skipped=planned - executed,
        executed=executed,
        cached=cached,
        failed=counts.get("failed", 0),
        seconds=time.perf_counter() - started,
        timeout=counts.get("timeout", 0),
        cancelled=counts.get("cancelled", 0),
        pruned=counts.get("pruned", 0),
        failures=first_failures(results) if bad else (),
        stopped=count.reason() if count.reached else None,
        folder=folder,
    )


def _outcome(spec: RunSpec, text: str) -> tuple[Outcome, datetime.datetime]:
    """Turn a worker's JSON record into an index row, and when the run ended.

    The text is decoded once, and read as a dict: a ``RunRecord`` is built only when a last
    metric value is tagged (a numpy scalar, a non-finite float). The row holds the record's
    text (an older version's marker of a run that could not start: the record it stands for).
    """
    text = _legacy_worker_error(text, spec)
    data = json.loads(text)
    if (
        not isinstance(data, dict)
        or data.get("format") != RECORD_FORMAT
        or not data.keys() >= _RECORD_KEYS
    ):
        RunRecord.from_dict(data if isinstance(data, dict) else {})  # raises, naming the fault
    _check_run(spec, data["run_id"])
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


#: How the text of an older version's worker error starts (``json.dumps`` of a one-key dict).
_LEGACY_START = '{"assay.worker-error":'


def _legacy_worker_error(text: str, run: RunSpec | RunRow) -> str:
    """Return ``text``, or the failed record (JSON) it stands for when it is a legacy marker.

    Before runs that could not start had a record of their own, a worker returned
    ``{"assay.worker-error": {type, message, traceback, ref, seed, run_id, started_at,
    ended_at, job, logs}}`` instead; cache entries and index rows written then still hold it.
    The marker has no params: those of ``run`` (the run's spec or index row) are the record's.

    Examples:
        >>> old = json.dumps({"assay.worker-error": {
        ...     "type": "builtins.ModuleNotFoundError", "message": "No module named 'gone'",
        ...     "traceback": "", "ref": "gone:train", "seed": 0, "run_id": "r1",
        ...     "started_at": "2024-01-01T00:00:00+00:00",
        ...     "ended_at": "2024-01-01T00:00:02+00:00", "job": None, "logs": None}})
        >>> run = RunSpec("r1", {"x": 1}, 0)
        >>> record = RunRecord.from_json(_legacy_worker_error(old, run))
        >>> record.status, record.run_id, record.params, record.duration
        ('failed', 'r1', {'x': 1}, 2.0)
        >>> _legacy_worker_error("{}", run)
        '{}'

    """
    if not text.startswith(_LEGACY_START):
        return text
    failure = json.loads(text)["assay.worker-error"]
    started, ended = str(failure["started_at"]), str(failure["ended_at"])
    try:
        seconds = (
            datetime.datetime.fromisoformat(ended) - datetime.datetime.fromisoformat(started)
        ).total_seconds()
    except (TypeError, ValueError):
        seconds = 0.0
    runtime = {"job": failure.get("job"), "operation_started": False}
    if isinstance(failure.get("logs"), Mapping):
        runtime["logs"] = failure["logs"]
    record = failed_start(
        str(failure["ref"]),
        int(failure["seed"]),
        {
            "run_id": failure.get("run_id") or run.run_id,
            "params": run.params,
            "replicate": run.replicate,
        },
        ErrorInfo(str(failure["type"]), str(failure["message"]), str(failure["traceback"])),
        (started, ended, max(seconds, 0.0)),
        runtime,
    )
    return record.to_json(indent=None)


def _job(runtime: Any) -> str | None:
    """Return the index's text of the job a run ran in, from its record's runtime (or None).

    The runtime names the job (``"job"``) and its logs (``"logs"``: stdout and stderr paths)
    when the run ran in a batch job.
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
