"""Reproduce one run of an experiment from its record alone, in a fresh process.

``reproduce(folder, run_id)`` reads the run's record and the experiment's identity (context
and scope) from the results index, runs the operation again in a new Python process with the
recorded params and seeds, and compares every metric series bit for bit. The rerun writes into
a folder of its own (temporary unless kept): nothing stored in the experiment folder changes.

The rerun is compared with the recorded run in ``_comparison``. The uncommitted changes the
runs were made from are kept in the experiment folder by ``_diffs``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from assay_ops import RunRecord, SeedBundle

from ._comparison import ReproduceReport, _warnings, compare_records
from ._folder import CACHE, RUNS
from ._index import ResultsIndex
from ._outcomes import _legacy_worker_error
from ._results import count_runs

# The fresh process: ``python -c`` puts the working directory first on the import path, as
# ``python -m`` does for the workers of an experiment.
_CHILD = "import sys; from assay._reproduce import _rerun; sys.exit(_rerun(sys.argv[1]))"


def reproduce(
    folder: str | Path,
    run_id: str,
    *,
    keep: str | Path | None = None,
    timeout: float | None = None,
) -> ReproduceReport:
    """Run a recorded run of an experiment again, in a fresh process, and compare its metrics.

    Everything comes from the experiment folder: the run's record (operation ref, params, seed
    key, resource hints) and the experiment's context and scope (from its results index). The
    rerun happens in a new Python process started in the current working directory with this
    process's import path, so it imports the operation as the experiment's workers did. It
    writes its artifacts into a folder of its own, never into the experiment's. Metric values
    are compared bit for bit: floats by their bytes (``0.1 + 0.2`` is not ``0.3``; NaN matches
    NaN only with the same bits), numpy values by dtype, shape and bytes, ``1`` never matches
    ``1.0``.

    Args:
        folder: The experiment folder.
        run_id: The run's id, or a prefix of it that no other run of the folder starts with.
        keep: A new (or empty) folder where the rerun keeps its record and artifacts; by
            default a temporary folder, removed afterwards. It may not be inside the
            experiment's ``runs/`` or ``cache/``.
        timeout: Seconds the rerun may take (default: no limit).

    Returns:
        The report: ``matches``, the ``differences`` and the ``warnings`` (other code, commit,
        uncommitted changes or package versions than the run was recorded with).

    Raises:
        FileNotFoundError: ``folder`` is not an experiment folder.
        KeyError: no run id of the folder is or starts with ``run_id``, or several start with it.
        ValueError: the run has no record to reproduce (pending, cancelled before it ran, or
            failed before its operation started); its operation was defined in the script
            that ran the experiment (``__main__``); ``keep`` is not a new or empty folder.
        RuntimeError: the rerun could not run (its process failed, e.g. the operation cannot
            be imported any more).
        TimeoutError: the rerun took longer than ``timeout``.

    Examples:
        >>> import tempfile
        >>> from assay import Experiment, grid
        >>> folder = tempfile.mkdtemp()
        >>> results = Experiment("pi", "assay._demo:estimate_pi", grid(n_samples=[100]),
        ...                      folder=folder, progress=False).run()
        >>> report = reproduce(folder, results.rows[0].run_id[:6])
        >>> report.matches, report.metrics
        (True, ('pi_estimate', 'abs_error'))

    """
    root = Path(folder)
    with ResultsIndex(root, read_only=True) as index:
        statuses = index.statuses()
        full_id = _resolve_id(root, run_id, statuses)
        (text,) = index.records([full_id])
        found = index.row(full_id)
        identity = index.get_meta("experiment") or {}
    if text is not None and found is not None:
        text = _legacy_worker_error(text, found[1])  # an older version's marker reads as a record
    recorded = _recorded(root, full_id, statuses[full_id], text)
    if recorded.ref.startswith("__main__:"):
        raise ValueError(
            f"run {full_id} ran operation {recorded.ref}, defined in the script that ran the "
            "experiment (__main__), which a fresh process cannot import; move the operation "
            "into a module of its own to reproduce its runs"
        )
    target = _rerun_folder(root, keep)
    work = Path(tempfile.mkdtemp(prefix="assay-reproduce-"))
    try:
        run_dir = target if target is not None else work / full_id
        job = {
            "record": text,
            "context": identity.get("context") or {},
            "scope": identity.get("scope") or {},
            "run_dir": str(run_dir.resolve()),
        }
        job_file = work / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        _run_child(job_file, full_id, timeout)
        reproduced = RunRecord.load(run_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ReproduceReport(
        folder=root,
        run_id=full_id,
        metrics=tuple(recorded.metrics),
        differences=tuple(compare_records(recorded, reproduced)),
        warnings=tuple(_warnings(root, recorded, reproduced, identity)),
        recorded=recorded,
        reproduced=reproduced,
    )


def _resolve_id(folder: Path, run_id: str, statuses: Mapping[str, str]) -> str:
    """Return the run id that is ``run_id`` or the only one starting with it."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValueError(f"run id {run_id!r}: expected a run id or a prefix of one")
    if run_id in statuses:
        return run_id
    found = sorted(rid for rid in statuses if rid.startswith(run_id))
    if len(found) == 1:
        return found[0]
    if not found:
        raise KeyError(
            f"run {run_id!r} is not in experiment folder {str(folder)!r} "
            f"({count_runs(len(statuses))}); `assay results {folder}` lists their ids"
        )
    shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
    raise KeyError(
        f"run id prefix {run_id!r} is ambiguous in experiment folder {str(folder)!r}: "
        f"{len(found)} runs start with it ({shown}); give more of the id"
    )


def _recorded(folder: Path, run_id: str, status: str, text: str | None) -> RunRecord:
    if text is None:
        raise ValueError(
            f"run {run_id} of experiment folder {str(folder)!r} has no record (status "
            f"{status}): it never ran to its end, so there is nothing to reproduce; run the "
            "experiment to complete it"
        )
    recorded = RunRecord.from_json(text)
    if recorded.runtime.get("operation_started") is False and recorded.error is not None:
        raise ValueError(
            f"run {run_id} of experiment folder {str(folder)!r} failed before its operation "
            f"started ({recorded.error.type.rpartition('.')[2]}: {recorded.error.message}); "
            "there is nothing to reproduce"
        )
    return recorded


def _rerun_folder(folder: Path, keep: str | Path | None) -> Path | None:
    """Check the folder the rerun should be kept in: new or empty, not the experiment's own."""
    if keep is None:
        return None
    target = Path(keep)
    resolved = target.resolve()
    for own in (RUNS, CACHE):
        protected = (folder / own).resolve()
        if resolved == protected or protected in resolved.parents:
            raise ValueError(
                f"keep = {str(target)!r} is inside the experiment's {own}/ folder; expected a "
                "folder outside it: a rerun never writes where the experiment keeps its runs"
            )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"keep = {str(target)!r} is not empty; expected a new or empty folder")
    return target


def _child_env() -> dict[str, str]:
    """Return the environment of the rerun: this one, with this process's import path."""
    env = dict(os.environ)
    here = os.getcwd()
    entries = [here if entry == "" else entry for entry in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(e for e in entries if e))
    return env


def _run_child(job_file: Path, run_id: str, timeout: float | None) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(job_file)],
            cwd=os.getcwd(),
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(
            f"the rerun of run {run_id} took longer than timeout = {timeout} s; it was stopped"
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {done.returncode}, no message"
        raise RuntimeError(
            f"the rerun of run {run_id} in a fresh process failed before it made a record: {last}"
        )


def _rerun(job_file: str) -> int:
    """Rerun a recorded run as an experiment's worker does; save its record beside its artifacts.

    Runs in the fresh process ``reproduce`` starts: the params, seeds and resource hints come
    from the stored record, the context and scope from the experiment's identity.
    """
    from assay_context import FrozenContext
    from assay_ops import Capture, Runtime, import_operation
    from assay_scope import param_scope

    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    recorded = RunRecord.from_json(job["record"])
    run_dir = Path(job["run_dir"])
    hints = recorded.runtime
    operation = import_operation(recorded.ref)
    args = (
        FrozenContext(job["context"]),
        recorded.params,
        SeedBundle.from_key(recorded.seed),
        Runtime(
            run_dir,
            backend=str(hints.get("backend") or "inline"),
            cpus=int(hints.get("cpus") or 1),
            gpus=int(hints.get("gpus") or 0),
            memory=hints.get("memory"),
        ),
        Capture(artifact_dir=run_dir / "artifacts"),
    )
    if job["scope"]:
        with param_scope(**job["scope"]):
            record = operation.run(*args, run_id=recorded.run_id)
    else:
        record = operation.run(*args, run_id=recorded.run_id)
    record.save(run_dir)
    return 0
