"""What runs in a worker: one experiment run as one cache entry of a Step.

The step's item is the run spec (run id, params, replicate); its configuration holds what
every run of the experiment shares (the operation's ref, the root seed, the context and scope
values). The operation reaches the worker by its ref and is imported there, so nothing but
plain data crosses process or machine boundaries.
"""

from __future__ import annotations

import datetime
import json
import os
import time
import traceback
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import pydantic
from assay_context import FrozenContext
from assay_ops import (
    Capture,
    RunRecord,
    Runtime,
    SeedBundle,
    import_operation,
    is_infrastructure_error,
)
from assay_scope import param_scope
from assay_steps import Step

from ._usage import Usage, current_job, job_logs

#: Key of the JSON object a worker returns instead of a record when the run could not start.
WORKER_ERROR = "assay.worker-error"
#: Most records kept for the driver to take (a sweep's chunks are at most 4096 runs).
_MAX_FRESH = 8192


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

    # Records computed in this process, by run id, with their text: the driver takes them
    # instead of parsing the text again (a result read from the cache has none).
    _fresh: dict[str, tuple[str, RunRecord]] = pydantic.PrivateAttr(default_factory=dict)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private["_fresh"] = {}  # a copy sent to a worker does not carry the driver's records
        return {**state, "__pydantic_private__": private}

    def _run(self, value: Any) -> str:
        return next(self._run_batch([value]))

    def _run_batch(self, values: Iterable[Any]) -> Iterator[str]:
        runner = self._runner()  # what every run shares is prepared once per batch
        fresh = self._fresh
        for value in values:
            text = runner.run(value)
            if runner.record is not None:
                if len(fresh) >= _MAX_FRESH:  # nobody takes them (the step used on its own)
                    fresh.clear()
                fresh[value["run_id"]] = (text, runner.record)
            yield text

    def take_record(self, run_id: str, text: str) -> RunRecord | None:
        """Return the record of ``run_id`` if this process computed it and ``text`` is it."""
        found = self._fresh.pop(run_id, None)
        return found[1] if found is not None and found[0] == text else None

    def drop_records(self) -> None:
        """Forget the records computed in this process that were not taken."""
        self._fresh.clear()

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
        #: The record of the last run, None when it failed outside the operation.
        self.record: RunRecord | None = None
        try:
            self.operation = import_operation(ref)
            # Shared by the runs: each gets its own child view of it (OperationWrapper.run).
            self.context = FrozenContext(context)
        except Exception as error:  # a module exiting at import too: an ImportError
            self.error = error

    def run(self, spec: dict[str, Any]) -> str:
        """Run one spec and return its record as JSON text.

        Never raises an ``Exception`` but one: an error outside the operation (its import, a
        bad context) becomes a ``failed`` record too, so that one broken run cannot stop a
        sweep (the operation's own ``SystemExit`` is its failed record already). Ctrl-C
        (``KeyboardInterrupt``) propagates, and so does an ``OSError`` saying the storage
        failed (``assay_ops.is_infrastructure_error``: a full disk is no run's outcome).
        """
        started = time.time()
        self.record = None
        if self.error is not None:
            return self._failure(spec, started, self.error)
        try:
            params = dict(spec["params"])
            run_id = spec["run_id"]
            # the run's own directory: the item carries it, so it is not part of the cache key
            runs = spec.get("runs")
            run_dir = None if runs is None else f"{runs}{os.sep}{run_id}"
            artifacts = None if run_dir is None else f"{run_dir}{os.sep}artifacts"
            args = (
                self.context,
                params,
                SeedBundle(self.seed, params, replicate=spec["replicate"]),
                Runtime(
                    run_dir, backend=self.backend, job=self.job, cpus=self.cpus, logs=self.logs
                ),
                Capture(artifact_dir=artifacts),
            )
            usage = Usage()
            if self.scope:
                with param_scope(**self.scope):
                    record = self.operation.run(*args, run_id=run_id)
            else:
                record = self.operation.run(*args, run_id=run_id)
            record.runtime = {**record.runtime, "resources": usage.measure()}
            # compact JSON: the C encoder is several times faster than indented output
            text = record.to_json(indent=None)
            self.record = record
            return text
        except Exception as error:
            if is_infrastructure_error(error):
                # The storage failed (a full disk), not the run: no record, nothing cached;
                # the driver leaves the run pending and says so.
                raise
            return self._failure(spec, started, error)

    def _failure(self, spec: dict[str, Any], started: float, error: Exception) -> str:
        return _failure(self.ref, self.seed, spec, _iso(started), error, self.job, self.logs)


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


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _failure(
    ref: str,
    seed: int,
    spec: dict[str, Any],
    started: str,
    error: Exception,
    job: str | None = None,
    logs: tuple[str, str] | None = None,
) -> str:
    """Describe an error raised outside the operation (importing it, building its context)."""
    return json.dumps(
        {
            WORKER_ERROR: {
                "type": f"{type(error).__module__}.{type(error).__qualname__}",
                "message": str(error),
                "traceback": "".join(
                    traceback.format_exception(type(error), error, error.__traceback__)
                ),
                "ref": ref,
                "seed": seed,
                "run_id": spec.get("run_id"),
                "started_at": started,
                "ended_at": _now(),
                "job": job,
                "logs": None if logs is None else {"stdout": logs[0], "stderr": logs[1]},
            }
        }
    )
