"""What runs in a worker: one experiment run as one cache entry of a Step.

The step's item is the run spec (run id, params, replicate); its configuration holds what
every run of the experiment shares (the operation's ref, the root seed, the context and scope
values). The operation reaches the worker by its ref and is imported there, so nothing but
plain data crosses process or machine boundaries.

Whatever happens, a run's result is its ``RunRecord`` as JSON text: a run that could not even
start (its operation does not import, its context cannot be frozen) gets a ``failed`` record
too (``failed_start``), whose runtime says ``"operation_started": False``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import pydantic
from assay_context import FrozenContext
from assay_ops import (
    Capture,
    ErrorInfo,
    RunRecord,
    Runtime,
    SeedBundle,
    import_operation,
    is_infrastructure_error,
)
from assay_scope import param_scope
from assay_steps import Step

from ._live import live_channel
from ._usage import Usage, current_job, job_logs


class ExperimentRun(Step):
    """A Step whose items are run specs and whose results are run records (as JSON text).

    Its cache entry for an item is the run's record: computing an item runs the operation
    once, and a cached item is a completed run. Artifacts are written to
    ``<runs>/<run_id>/artifacts`` by the capture, the moment they are captured, where
    ``runs`` comes with the item (the experiment folder's ``runs/``).
    """

    # The experiment checks its operation's code itself (Experiment.run's on_code_change);
    # this step's own code is assay's.
    code_version = "1"
    # Its _run_batch loops over its inputs: each record is cached the moment its run ends
    # (kept on Ctrl-C), rather than once the whole batch ended.
    _one_result_per_input: ClassVar[bool] = True

    operation: str
    seed: int
    context: dict[str, Any] = pydantic.Field(default_factory=dict)
    scope: dict[str, Any] = pydantic.Field(default_factory=dict)

    def item_uid(self, value: Any) -> str | None:
        """Key each run by its canonical run id (the same one the results index uses)."""
        return str(value["run_id"])

    def _run(self, value: Any) -> str:
        return next(self._run_batch([value]))

    def _run_batch(self, values: Iterable[Any]) -> Iterator[str]:
        runner = self._runner()  # what every run shares is prepared once per batch
        for value in values:
            yield runner.run(value)

    def landed(self, run_ids: list[str]) -> dict[str, str]:
        """Return the record (JSON text) of each of ``run_ids`` whose entry is in the cache.

        One look at what other processes wrote since the last one, then a status look-up of
        every run in one pass: cheap enough to ask every second about every run a sweep
        still waits for. A run whose entry is an error or cannot be read is left out (the
        end of the sweep reads it again).
        """
        store = self._store(())
        store.refresh()
        uids = [
            # a run id (hex) is its own uid: asked about every waiting run every second, the
            # general path (a check of the name per run) would cost more than the look-up
            run_id
            if run_id.isascii() and run_id.isalnum() and len(run_id) <= 200
            else self._item_uid({"run_id": run_id})
            for run_id in run_ids
        ]
        found: dict[str, str] = {}
        for run_id, uid, status in zip(run_ids, uids, store.statuses(uids), strict=True):
            if status != "success":
                continue
            try:
                entry = store.read(uid)
            except Exception:  # a corrupt entry: read (and reported) by the end of the sweep
                continue
            if entry is not None and entry[0] == "success" and isinstance(entry[1], str):
                found[run_id] = entry[1]
        return found

    def _runner(self) -> Runner:
        backend = "inline" if self.infra is None else type(self.infra).__name__
        return Runner(self.operation, self.seed, self.context, self.scope, backend)


class Runner:
    """Runs specs of one experiment; what the runs share is prepared once.

    The operation is imported and the context frozen when the runner is made; an error
    there (an unknown ref, a context value that cannot be frozen) makes every run a
    ``failed`` record, as an error in one run would.
    """

    def __init__(
        self,
        ref: str,
        seed: int,
        context: dict[str, Any],
        scope: dict[str, Any],
        backend: str = "inline",
    ) -> None:
        self.ref, self.seed, self.scope, self.backend = ref, seed, scope, backend
        self.job, self.cpus = current_job()
        #: The job's own stdout and stderr paths (None outside a submitit job).
        self.logs = job_logs() if self.job is not None else None
        self.error: Exception | None = None
        try:
            self.operation = import_operation(ref)
            # Shared by the runs: each gets its own child view of it (OperationWrapper.run).
            self.context = FrozenContext(context)
        except Exception as error:  # a module exiting at import too: an ImportError
            self.error = error

    def run(self, spec: dict[str, Any]) -> str:
        """Run one spec and return its record as JSON text.

        Never raises an ``Exception`` but one: an error outside the operation (its import, a
        bad context) becomes a ``failed`` record too (``failed_start``), so that one broken
        run cannot stop a sweep (the operation's own ``SystemExit`` is its failed record
        already). Ctrl-C (``KeyboardInterrupt``) propagates, and so does an ``OSError``
        saying the storage failed (``assay_ops.is_infrastructure_error``: a full disk is no
        run's outcome).
        """
        started = time.time()
        if self.error is not None:
            return self._failure(spec, started, self.error)
        record = None
        try:
            params = dict(spec["params"])
            run_id = spec["run_id"]
            # the run's own directory: the item carries it, so it is not part of the cache key
            runs = spec.get("runs")
            run_dir = None if runs is None else f"{runs}{os.sep}{run_id}"
            artifacts = None if run_dir is None else f"{run_dir}{os.sep}artifacts"
            # the run's live metrics, and its pruner's decisions (see _live)
            stream = live_channel(runs, run_id)
            args = (
                self.context,
                params,
                SeedBundle(self.seed, params, replicate=spec["replicate"]),
                Runtime(
                    run_dir, backend=self.backend, job=self.job, cpus=self.cpus, logs=self.logs
                ),
                Capture(artifact_dir=artifacts, live=stream),
            )
            usage = Usage()
            with contextlib.ExitStack() as stack:
                if stream is not None:  # its file is closed when the run ends
                    stack.enter_context(stream)
                if self.scope:
                    stack.enter_context(param_scope(**self.scope))
                record = self.operation.run(*args, run_id=run_id)
            record.runtime = {**record.runtime, "resources": usage.measure()}
            # compact JSON: the C encoder is several times faster than indented output
            return record.to_json(indent=None)
        except Exception as error:
            if is_infrastructure_error(error):
                # The storage failed (a full disk), not the run: no record, nothing cached;
                # the driver leaves the run pending and says so.
                raise
            return self._failure(spec, started, error, ran=record is not None)

    def _failure(
        self, spec: dict[str, Any], started: float, error: Exception, ran: bool = False
    ) -> str:
        """Return the failed record (JSON) of a run that an error outside its operation ended.

        ``ran`` says whether the operation ran all the same (the error came after it: its
        record could not be written).
        """
        ended = time.time()
        runs = spec.get("runs")
        runtime: dict[str, Any] = {
            "backend": self.backend,
            "job": self.job,
            "cpus": self.cpus,
            "gpus": 0,
            "memory": None,
            "run_dir": None if runs is None else f"{runs}{os.sep}{spec.get('run_id')}",
            "operation_started": ran,
        }
        if self.logs is not None:
            runtime["logs"] = {"stdout": self.logs[0], "stderr": self.logs[1]}
        times = (_iso(started), _iso(ended), max(ended - started, 0.0))
        record = failed_start(
            self.ref, self.seed, spec, ErrorInfo.of(error), times, runtime, _machine()
        )
        return _compact(record)


def execute(
    ref: str,
    seed: int,
    context: dict[str, Any],
    scope: dict[str, Any],
    spec: dict[str, Any],
    backend: str = "inline",
) -> str:
    """Run one spec of an experiment and return its record as JSON text (see ``Runner.run``)."""
    return Runner(ref, seed, context, scope, backend).run(spec)


def failed_start(
    ref: str,
    seed: int,
    spec: Mapping[str, Any],
    error: ErrorInfo,
    times: tuple[str, str, float],
    runtime: dict[str, Any],
    provenance: dict[str, Any] | None = None,
) -> RunRecord:
    """Return the ``failed`` record of a run whose operation could not be run.

    The record is the one a run of operation ``ref`` gets, as far as the worker knows it:
    the run id, params and replicate of ``spec``; the seed key ``SeedBundle`` gives them
    under root seed ``seed`` (only the root seed and replicate when they cannot make a
    bundle, the very error that stopped the run); a code hash of ``""`` (the code was never
    read); no metrics, artifacts or logs. ``times`` holds the start and end (ISO 8601, UTC)
    and the duration in seconds; ``runtime`` says ``"operation_started"``.

    Examples:
        >>> error = ErrorInfo("builtins.ModuleNotFoundError", "No module named 'gone'", "")
        >>> spec = {"run_id": "r1", "params": {"lr": 0.1}, "replicate": 0}
        >>> times = ("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:01+00:00", 1.0)
        >>> record = failed_start("gone:train", 0, spec, error, times, {})
        >>> record.status, record.operation, record.error.type, record.replicate
        ('failed', 'train', 'builtins.ModuleNotFoundError', 0)

    """
    params = spec.get("params")
    values = dict(params) if isinstance(params, Mapping) else {}
    replicate = spec.get("replicate", 0)
    try:
        key = SeedBundle(seed, values, replicate=replicate).key
    except Exception:  # params or replicate that make no bundle: the run's own error says so
        key = {"root_seed": seed, "replicate": replicate}
    return RunRecord(
        run_id=str(spec.get("run_id")),
        operation=ref.rpartition(":")[2].rpartition(".")[2],  # its function's name, by default
        ref=ref,
        code_hash="",
        params=values,
        seed=key,
        status="failed",
        metrics={},
        metric_tags={},
        artifacts=[],
        logs=[],
        started_at=times[0],
        ended_at=times[1],
        duration=times[2],
        error=error,
        provenance={} if provenance is None else provenance,
        runtime=runtime,
    )


def _compact(record: RunRecord) -> str:
    """Return a failed record as compact JSON; params it cannot hold are kept as their repr.

    Such params may be what failed the run (its record could not be written): its failed
    record must be written all the same.
    """
    try:
        return record.to_json(indent=None)
    except (TypeError, ValueError):
        record.params = {str(name): repr(value) for name, value in record.params.items()}
        return record.to_json(indent=None)


def _machine() -> dict[str, Any]:
    """Return the provenance a worker knows without its operation: interpreter and host."""
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "hostname": socket.gethostname(),
    }


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()
