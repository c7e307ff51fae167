"""What runs in a worker: one experiment run as one cache entry of a Step.

The step's item is the run spec (run id, params, replicate); its configuration holds what
every run of the experiment shares (the operation's ref, the root seed, the context and scope
values). The operation reaches the worker by its ref and is imported there, so nothing but
plain data crosses process or machine boundaries.
"""

from __future__ import annotations

import datetime
import json
import traceback
from pathlib import Path
from typing import Any

import pydantic
from assay_context import FrozenContext
from assay_ops import Capture, Runtime, SeedBundle, import_operation
from assay_scope import param_scope
from assay_steps import Step

#: Key of the JSON object a worker returns instead of a record when the run could not start.
WORKER_ERROR = "assay.worker-error"


class ExperimentRun(Step):
    """A Step whose items are run specs and whose results are run records (as JSON text).

    Its cache entry for an item is the run's record: computing an item runs the operation
    once, and a cached item is a completed run. Artifacts are written to
    ``<runs>/<run_id>/artifacts`` by the capture, the moment they are captured, where
    ``runs`` comes with the item (the experiment folder's ``runs/``).
    """

    operation: str
    seed: int
    context: dict[str, Any] = pydantic.Field(default_factory=dict)
    scope: dict[str, Any] = pydantic.Field(default_factory=dict)

    def item_uid(self, value: Any) -> str | None:
        """Key each run by its canonical run id (the same one the results index uses)."""
        return str(value["run_id"])

    def _run(self, value: Any) -> str:
        backend = "inline" if self.infra is None else type(self.infra).__name__
        return execute(self.operation, self.seed, self.context, self.scope, value, backend)


def execute(
    ref: str,
    seed: int,
    context: dict[str, Any],
    scope: dict[str, Any],
    spec: dict[str, Any],
    backend: str = "inline",
) -> str:
    """Run one spec of an experiment and return its record as JSON text.

    Never raises an ``Exception``: an error outside the operation (its import, a bad context)
    becomes a ``failed`` record too, so that one broken run cannot stop a sweep. Ctrl-C
    (``KeyboardInterrupt``) propagates.
    """
    started = _now()
    try:
        operation = import_operation(ref)
        params = dict(spec["params"])
        # the run's own directory: the item carries it, so it is not part of the cache key
        run_dir = None if spec.get("runs") is None else Path(spec["runs"]) / spec["run_id"]
        capture = Capture(artifact_dir=None if run_dir is None else run_dir / "artifacts")
        args = (
            FrozenContext(context),
            params,
            SeedBundle(seed, params, replicate=spec["replicate"]),
            Runtime(run_dir, backend=backend),
            capture,
        )
        if scope:
            with param_scope(**scope):
                record = operation.run(*args, run_id=spec["run_id"])
        else:
            record = operation.run(*args, run_id=spec["run_id"])
        # compact JSON: the C encoder is several times faster than indented output
        return json.dumps(record.to_dict(), separators=(",", ":"), allow_nan=False)
    except Exception as error:
        return _failure(ref, seed, spec, started, error)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _failure(ref: str, seed: int, spec: dict[str, Any], started: str, error: Exception) -> str:
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
            }
        }
    )
