"""Reproduce one run of an experiment from its record alone, in a fresh process.

``reproduce(folder, run_id)`` reads the run's record and the experiment's identity (context
and scope) from the results index, runs the operation again in a new Python process with the
recorded params and seeds, and compares every metric series bit for bit. The rerun writes into
a folder of its own (temporary unless kept): nothing stored in the experiment folder changes.

The experiment folder also keeps the uncommitted changes its runs were made from, once per
distinct diff: ``<folder>/provenance/diffs/<sha256>.diff`` (see ``store_diff``).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from assay_ops import OperationWrapper, RunRecord, SeedBundle, git_state

from ._folder import CACHE, RUNS
from ._index import ResultsIndex
from ._results import count_runs
from ._worker import WORKER_ERROR

#: Where an experiment folder keeps the diffs of the dirty work trees its runs came from.
DIFFS = Path("provenance") / "diffs"

#: Differing values listed per metric before the rest are counted.
_MAX_PER_METRIC = 5

# The fresh process: ``python -c`` puts the working directory first on the import path, as
# ``python -m`` does for the workers of an experiment.
_CHILD = "import sys; from assay._reproduce import _rerun; sys.exit(_rerun(sys.argv[1]))"


# ---------------------------------------------------------------- the diff of a dirty tree


def store_diff(folder: str | Path, operation: OperationWrapper) -> Path | None:
    """Store the uncommitted changes of the operation's repository in an experiment folder.

    The diff (``git diff <commit> --binary`` of the tracked files) is written to
    ``<folder>/provenance/diffs/<sha256>.diff``, named by its content: written only when no
    file of that name exists, through a temporary file renamed into place, so it is stored
    once per experiment folder however many runs carry its address (``git_diff`` in their
    provenance). The git state is computed once per process.

    Returns:
        The diff's path, or ``None`` when the tree is clean, outside git, or git cannot say.

    """
    try:
        source = inspect.getsourcefile(operation.func)
    except TypeError:  # a builtin or a callable without source
        return None
    if source is None:
        return None
    state = git_state(source)
    if not state.dirty or state.diff_bytes is None or state.diff_name is None:
        return None
    target = Path(folder) / DIFFS / state.diff_name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(state.diff_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def diff_path(folder: str | Path, address: str) -> Path:
    """Return where the diff of content address ``"sha256:<hex>"`` is stored in ``folder``.

    Examples:
        >>> diff_path("runs/pi", "sha256:ab12").as_posix()
        'runs/pi/provenance/diffs/ab12.diff'

    """
    algorithm, _, digest = address.partition(":")
    if algorithm != "sha256" or not digest or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError(f"diff address {address!r}: expected 'sha256:<hex digits>'")
    return Path(folder) / DIFFS / f"{digest}.diff"


# ---------------------------------------------------------------- the report


@dataclasses.dataclass(frozen=True)
class ReproduceReport:
    """What [`reproduce`][assay.reproduce] found when it ran a recorded run again.

    Attributes:
        folder: The experiment folder.
        run_id: The run's full id.
        metrics: Names of the metrics the run recorded, in order.
        differences: One line per difference (status, missing or extra metric, differing
            value); empty when the rerun matched bit for bit.
        warnings: What may explain a difference without being one: other code (code hash),
            another git commit or other uncommitted changes, other package versions.
        recorded: The run's stored record.
        reproduced: The record of the rerun.

    Examples:
        >>> from assay_ops import operation
        >>> @operation
        ... def op(capture):
        ...     capture.metric("loss", 0.5)
        >>> record = op.run(run_id="r1")
        >>> report = ReproduceReport(Path("runs/x"), "r1", ("loss",), (), (), record, record)
        >>> report.matches, report.lines()
        (True, ['run r1: its 1 metric matches bit for bit'])

    """

    folder: Path
    run_id: str
    metrics: tuple[str, ...]
    differences: tuple[str, ...]
    warnings: tuple[str, ...]
    recorded: RunRecord = dataclasses.field(repr=False)
    reproduced: RunRecord = dataclasses.field(repr=False)

    @property
    def matches(self) -> bool:
        """Whether the rerun reproduced the status and every metric bit for bit."""
        return not self.differences

    def lines(self) -> list[str]:
        """Return the report as ``assay reproduce`` prints it (warnings not included)."""
        if self.matches:
            n = len(self.metrics)
            if n == 0:
                return [f"run {self.run_id}: no metrics recorded; status {self.recorded.status} "
                        "matches"]  # fmt: skip
            what = "its 1 metric matches" if n == 1 else f"all {n} metrics match"
            status = self.recorded.status
            also = "" if status == "success" else f" (status {status}, as recorded)"
            return [f"run {self.run_id}: {what} bit for bit{also}"]
        n = len(self.differences)
        head = f"run {self.run_id}: {n} difference{'s' if n != 1 else ''} from the recorded run"
        return [head + ":", *(f"  {line}" for line in self.differences)]

    def __str__(self) -> str:
        return "\n".join([*self.lines(), *(f"warning: {w}" for w in self.warnings)])


# ---------------------------------------------------------------- reproduce


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
        identity = index.get_meta("experiment") or {}
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
    data = json.loads(text)
    if WORKER_ERROR in data:
        failure = data[WORKER_ERROR]
        raise ValueError(
            f"run {run_id} of experiment folder {str(folder)!r} failed before its operation "
            f"started ({failure.get('type', '?').rpartition('.')[2]}: {failure.get('message')}); "
            "there is no record to reproduce"
        )
    return RunRecord.from_dict(data)


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


# ---------------------------------------------------------------- comparison


def identical(a: Any, b: Any) -> bool:
    """Whether two record values are the same bit for bit.

    Floats compare by their bytes (NaN matches NaN with the same bits; ``0.0`` is not
    ``-0.0``), numpy values by dtype, shape and bytes (and mask), containers element by
    element; values of different types never match.

    Examples:
        >>> identical(0.1 + 0.2, 0.3), identical(float("nan"), float("nan")), identical(1, 1.0)
        (False, True, False)

    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, complex):
        return struct.pack("<dd", a.real, a.imag) == struct.pack("<dd", b.real, b.imag)
    if isinstance(a, np.ndarray):
        same = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        if same and isinstance(a, np.ma.MaskedArray):
            return bool(np.ma.getmaskarray(a).tobytes() == np.ma.getmaskarray(b).tobytes())
        return bool(same)
    if isinstance(a, np.generic):
        return bool(a.dtype == b.dtype and a.tobytes() == b.tobytes())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # an == that cannot answer is not a match
        return False


def compare_records(recorded: RunRecord, now: RunRecord) -> list[str]:
    """Return the differences between a recorded run and its rerun, one line each.

    The status, then for every metric: recorded but missing now, produced now but not
    recorded, a different number of values, and each differing value (or tags) with its step.

    Examples:
        >>> from assay_ops import operation
        >>> @operation
        ... def op(params, capture):
        ...     capture.metric("loss", params["x"], step=3)
        >>> compare_records(op.run(params={"x": 0.25}), op.run(params={"x": 0.2500001}))
        ['metric loss: step 3: 0.25 (recorded) != 0.2500001 (now)']

    """
    out = []
    if recorded.status != now.status:
        line = f"status: {recorded.status} (recorded) != {now.status} (now)"
        if now.error is not None:
            line += f"; now {now.error.type.rpartition('.')[2]}: {_first_line(now.error.message)}"
        out.append(line)
    elif (
        recorded.error is not None
        and now.error is not None
        and (recorded.error.type != now.error.type)
    ):
        out.append(f"error: {recorded.error.type} (recorded) != {now.error.type} (now)")
    for name in recorded.metrics:
        if name not in now.metrics:
            out.append(f"metric {name}: recorded, missing now")
    for name in now.metrics:
        if name not in recorded.metrics:
            out.append(f"metric {name}: produced now, not recorded")
    for name, old in recorded.metrics.items():
        if name in now.metrics:
            out.extend(
                _series(
                    name,
                    old,
                    now.metrics[name],
                    recorded.metric_tags.get(name, []),
                    now.metric_tags.get(name, []),
                )
            )
    return out


def _series(
    name: str,
    old: Sequence[Any],
    new: Sequence[Any],
    old_tags: Sequence[Mapping[str, Any]],
    new_tags: Sequence[Mapping[str, Any]],
) -> list[str]:
    found = []
    for i, (a, b) in enumerate(zip(old, new, strict=False)):  # the counts are compared below
        where = _where(i, old_tags)
        if not identical(a, b):
            shown_a, shown_b = _show(a), _show(b)
            if shown_a == shown_b:  # the same text, other bits (NaN payloads, dtypes, types)
                shown_a, shown_b = _bits(a), _bits(b)
            found.append(f"metric {name}: {where}: {shown_a} (recorded) != {shown_b} (now)")
        elif i < len(old_tags) and i < len(new_tags) and not identical(old_tags[i], new_tags[i]):
            found.append(
                f"metric {name}: {where}: tags {old_tags[i]!r} (recorded) != {new_tags[i]!r} (now)"
            )
    if len(found) > _MAX_PER_METRIC:
        more = len(found) - _MAX_PER_METRIC
        found = [*found[:_MAX_PER_METRIC], f"metric {name}: ... and {more} more differing values"]
    if len(old) != len(new):
        found.append(f"metric {name}: {len(old)} values (recorded) != {len(new)} values (now)")
    return found


def _where(index: int, tags: Sequence[Mapping[str, Any]]) -> str:
    step = tags[index].get("step") if index < len(tags) else None
    return f"value {index}" if step is None else f"step {step}"


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        body = np.array2string(value, threshold=8, edgeitems=3, floatmode="unique")
        return f"{value.dtype} array {list(value.shape)} {' '.join(body.split())}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _bits(value: Any) -> str:
    kind = type(value).__name__
    if isinstance(value, float):
        return f"{kind} {value!r} (bytes {struct.pack('<d', value).hex()})"
    if isinstance(value, (np.ndarray, np.generic)):
        return f"{kind} {value.dtype} (bytes {value.tobytes().hex()[:64]})"
    return f"{kind} {_show(value)}"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


# ---------------------------------------------------------------- warnings


def _warnings(
    folder: Path, recorded: RunRecord, now: RunRecord, identity: Mapping[str, Any]
) -> list[str]:
    out = []
    if recorded.code_hash and now.code_hash and recorded.code_hash != now.code_hash:
        out.append(
            f"the code of operation {recorded.ref} changed since the run was recorded (code "
            f"hash {recorded.code_hash} -> {now.code_hash}): a difference may come from the edit"
        )
    before, after = recorded.provenance, now.provenance
    if before.get("git_commit") and before.get("git_commit") != after.get("git_commit"):
        out.append(
            f"git commit: {before['git_commit']} (recorded) != {after.get('git_commit')} (now)"
        )
    if before.get("git_diff") != after.get("git_diff") and (
        before.get("git_dirty") or after.get("git_dirty")
    ):
        line = f"uncommitted changes: {_tree(before)} (recorded) != {_tree(after)} (now)"
        if before.get("git_diff"):
            stored = diff_path(folder, before["git_diff"])
            line += (
                f"; the recorded diff is {stored}"
                if stored.is_file()
                else "; the recorded diff is not stored in this folder"
            )
        out.append(line)
    out.extend(_versions(before, after))
    out.extend(_seeds(recorded))
    if not _identity_restored(identity):
        out.append(
            "the experiment's context or scope holds values its index keeps only as JSON "
            "(tuples as lists, objects as their repr): the rerun used that JSON form"
        )
    return out


def _tree(provenance: Mapping[str, Any]) -> str:
    dirty = provenance.get("git_dirty")
    if dirty is None:
        return "unknown"
    return f"diff {provenance.get('git_diff')}" if dirty else "clean"


def _versions(before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterable[str]:
    if before.get("python") and before.get("python") != after.get("python"):
        yield f"python {before.get('python')} (recorded) != {after.get('python')} (now)"
    old, new = before.get("packages") or {}, after.get("packages") or {}
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            yield f"package {name} {old.get(name)} (recorded) != {new.get(name)} (now)"


def _seeds(recorded: RunRecord) -> Iterable[str]:
    seed = recorded.seed
    try:
        derived = SeedBundle(seed["root_seed"], recorded.params, replicate=seed["replicate"]).key
    except (KeyError, TypeError, ValueError):
        return
    if derived["params_digest"] != seed.get("params_digest"):
        yield (
            "the seeds this version of assay derives from the run's params differ from the "
            "recorded ones; the rerun used the recorded seeds"
        )


def _identity_restored(identity: Mapping[str, Any]) -> bool:
    """Whether the context and scope read back from the index are the experiment's own.

    The index keeps them as JSON; the experiment's config uid (the canonical digest of its
    operation, seed, context and scope) tells whether that JSON lost anything.
    """
    if "config" not in identity or not (identity.get("context") or identity.get("scope")):
        return True
    from ._experiment import _backend, _config_uid
    from ._worker import ExperimentRun

    # The uid is computed, never written: the backend's folder is not created.
    nowhere = Path(tempfile.gettempdir()) / "assay-identity-probe" / CACHE
    try:
        step = ExperimentRun(
            operation=identity["operation"],
            seed=identity["seed"],
            context=identity.get("context") or {},
            scope=identity.get("scope") or {},
            infra=_backend(None, nowhere),
        )
        return bool(_config_uid(step) == identity["config"])
    except Exception:  # a folder of another version: nothing to compare with
        return True
