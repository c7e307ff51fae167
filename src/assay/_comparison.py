"""Comparing a rerun with its recorded run: values bit for bit, and the report of it.

``compare_records`` lists every difference of status and metric values (floats by their
bytes, numpy values by dtype, shape and bytes); ``ReproduceReport`` holds them with the
warnings that may explain a difference without being one (other code, commit, uncommitted
changes, package versions or seeds).
"""

from __future__ import annotations

import dataclasses
import struct
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from assay_ops import RunRecord, SeedBundle

from ._diffs import diff_path
from ._folder import CACHE

#: Differing values listed per metric before the rest are counted.
_MAX_PER_METRIC = 5


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
    from ._identity import _backend, _config_uid
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
