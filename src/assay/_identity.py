"""What an experiment is: its checked inputs, the identity of its folder, the code-change policy.

An experiment folder belongs to one experiment: its operation, root seed, context and scope,
hashed as data into the uid of its step (``_config_uid``), which the index stores when a run
first claims the folder (``stored_identity``) and checks on every later run
(``check_stored``). When the operation's code changed since runs were recorded, the
``on_code_change`` policy decides what becomes of them (``stale_runs``).
"""

from __future__ import annotations

import json
import os
import sys
from array import array
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from assay_context import MAX_NESTING, nesting_depth
from assay_ops import (
    DEFAULT_ROOT_SEED,
    CodeFingerprint,
    OperationWrapper,
    code_hash,
    import_operation,
)
from assay_steps import UID_ENCODING, UID_TYPES, Backend, CodeChangedError

from ._index import ResultsIndex
from ._worker import ExperimentRun

if TYPE_CHECKING:
    from ._experiment import Experiment

CodeChange = Literal["error", "rerun", "keep"]
# Index meta key of the code fingerprint (to_dict) of each code hash runs started with.
_CODE_META = "code_fingerprint:"


class FolderConflictError(ValueError):
    """The experiment folder belongs to another experiment (operation, seed or context differ)."""


# ---------------------------------------------------------------- the folder's identity


def _identity(experiment: Experiment) -> dict[str, Any]:
    return {
        "operation": experiment.operation.ref,
        "seed": experiment.seed,
        "context": _jsonable(experiment.context),
        "scope": _jsonable(experiment.scope),
    }


def stored_identity(experiment: Experiment) -> dict[str, Any]:
    """Return the identity ``run()`` stores in the folder's index."""
    return {
        "name": experiment.name,
        **_identity(experiment),
        "config": experiment._config,
        "encoding": UID_ENCODING,
    }


def check_stored(experiment: Experiment, stored: dict[str, Any] | None) -> None:
    """Raise unless the identity ``stored`` in the folder's index is this experiment's."""
    if stored is None or stored.get("config") == experiment._config:
        return
    # A folder written by an older uid encoding holds another config uid for the same
    # experiment: it is compared on the printed identity alone (as below), then adopted.
    older = stored.get("encoding", 2) != UID_ENCODING
    # Another experiment: the printed identity names what differs. (Folders made before
    # the identity held the step's uid are compared on the printed form alone.)
    where = f"folder {str(experiment.folder)!r} belongs to experiment {stored.get('name')!r}"
    for key, value in _identity(experiment).items():
        if stored.get(key) != value:
            raise FolderConflictError(
                f"{where} with {key} = {stored.get(key)!r}, not {value!r}; use another folder"
            )
    if "config" in stored and not older:
        raise FolderConflictError(
            f"{where}, whose operation, seed, context and scope print the same but differ "
            "as data (a large array prints abbreviated, or a file that a Path names changed, "
            "for instance); use another folder"
        )


def stale_runs(
    experiment: Experiment,
    index: ResultsIndex,
    policy: CodeChange,
    other_code: dict[str, array[int]],
) -> list[array[int]]:
    """Return the positions of runs of another code hash to rerun; raise if undecided.

    ``other_code`` holds the finished runs of the sweep recorded with another code hash,
    by that hash (the failed ones are left out when retried anyway: there is nothing of
    theirs to keep or rerun). A decision to keep such runs holds for the current code:
    later runs of it do not ask again (``"rerun"`` still reruns them), while code that
    changes again asks about every run of other code.
    """
    current = experiment.operation.code_hash
    if not current:  # source unavailable: nothing to compare
        return []
    if index.get_meta(_CODE_META + current) is None:  # what this code is, for later
        index.set_meta(_CODE_META + current, experiment.operation.code_fingerprint.to_dict())
    other = other_code
    # hashes whose results were kept for this very code: "keep" is decided once per code
    kept = index.get_meta("kept_code", {}).get(current, [])
    if other and policy == "keep":
        index.set_meta("kept_code", {current: sorted({*kept, *other})})
    if policy == "error":
        other = {h: positions for h, positions in other.items() if h not in kept}
    if other and policy == "error":
        old = min(other, key=lambda h: other[h][0])  # of the run planned first
        count = sum(len(positions) for positions in other.values())
        runs = "1 run was" if count == 1 else f"{count} runs were"
        raise CodeChangedError(
            f"operation {experiment.operation.ref} changed since {runs} recorded "
            f"(code hash {old} -> {current}){_code_changes(experiment, index, old)}"
        )
    return list(other.values()) if policy == "rerun" else []


def _code_changes(experiment: Experiment, index: ResultsIndex, old: str) -> str:
    """Say what changed since code hash ``old``, function by function, with file:line."""
    stored = index.get_meta(_CODE_META + old)
    try:
        before = CodeFingerprint.from_dict(stored) if stored is not None else None
    except ValueError:
        before = None
    if before is None and old == code_hash(experiment.operation.func):
        # An older assay hashed the operation's own body only: that much is checkable.
        return (
            "; its runs were recorded by an older version of assay, whose code hash covered "
            "the operation's own body only: that body is unchanged, but the functions it "
            "calls could not be checked then (keep the runs if you know they did not change)"
        )
    if before is None:
        return (
            f"; what changed is not known: the fingerprint of code hash {old} is not stored "
            "(its runs were recorded by an older version of assay)"
        )
    lines = experiment.operation.code_fingerprint.changes(before)
    if len(lines) > 20:
        lines = [*lines[:20], f"and {len(lines) - 20} more changes"]
    return "".join(f"; {line}" for line in lines)


# -------------------------------------------------------------- running


# ---------------------------------------------------------------- the experiment's inputs


def _resolve(operation: OperationWrapper | str) -> OperationWrapper:
    if isinstance(operation, str):
        return import_operation(operation)
    if not isinstance(operation, OperationWrapper):
        raise TypeError(
            f"operation = {operation!r}; expected an @operation or its ref 'module:name'"
        )
    try:  # workers rebuild the operation from its ref: it must be importable
        import_operation(operation.ref)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(
            f"operation {operation.name!r} cannot be imported by its ref {operation.ref!r} "
            f"({error}); define it at module level of an importable module"
        ) from error
    return operation


def _check_importable_in_jobs(operation: OperationWrapper, backend: Any) -> None:
    # A backend whose class has ``new_interpreter`` (submitit jobs) runs items in a new
    # interpreter, where ``__main__`` is submitit's own module: an operation of the running
    # script cannot be imported there by its ref. Pools fork, or spawn with the script as
    # ``__main__`` again, and find it.
    new = bool(getattr(type(backend), "new_interpreter", False))
    if operation.ref.startswith("__main__:") and new:
        raise ValueError(
            f"operation {operation.name!r} is defined in the script being run (__main__), and "
            f"{type(backend).__name__} jobs import it by its ref in a new interpreter where "
            "that script is not __main__; move the operation into its own module (e.g. "
            "my_ops.py next to the script), import it from there, and run from that folder"
        )


def _folder_name(name: str) -> str:
    """Return ``name`` if it can be the default folder ``runs/<name>``, else raise."""
    if name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(
            f"name = {name!r} cannot name the default folder runs/<name>: expected a single "
            "folder name (no '/', '\\', NUL, not '.' or '..'); or pass folder="
        )
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        raise ValueError(
            f"name = {name!r} cannot be encoded as a folder name "
            f"({sys.getfilesystemencoding()}): pass a name of encodable characters or folder="
        ) from None
    if size > _MAX_NAME_BYTES:
        raise ValueError(
            f"name = {name!r} is {size} bytes in the file system encoding; the default folder "
            f"runs/<name> takes at most {_MAX_NAME_BYTES} bytes: pass a shorter name or folder="
        )
    return name


#: File names take at most 255 bytes (of the file system encoding: 3 a CJK character in UTF-8).
_MAX_NAME_BYTES = 255
#: Root seeds are the entropy of a numpy SeedSequence, whose pool holds 128 bits.
_SEED_LIMIT = 2**128


def _check_seed(seed: int | None) -> int:
    if seed is None:
        return DEFAULT_ROOT_SEED
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _SEED_LIMIT:
        raise ValueError(
            f"seed = {seed!r}; expected an int with 0 <= seed < 2**128 (the entropy of "
            "numpy's SeedSequence that every run's seeds derive from)"
        )
    return seed


def _mapping(label: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{label} = {value!r}; expected a mapping of names to values")
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{label}: key {key!r} is a {type(key).__name__}; expected str")
        depth = nesting_depth(item)
        if depth is None:
            raise ValueError(f"{label}[{key!r}] contains itself; expected data")
        if depth > MAX_NESTING:
            raise ValueError(
                f"{label}[{key!r}] is nested {depth} levels deep; expected at most "
                f"{MAX_NESTING} levels of nested containers"
            )
    return dict(value)


def _config_uid(step: ExperimentRun) -> str:
    """Return the uid of the experiment's step: a canonical digest of what its runs share.

    It hashes the operation's ref, the root seed, the context and the scope as data (the cache
    keys its entries under it), so it is the folder's identity. A value it cannot hash is
    refused here, naming its key, before the folder is made.
    """
    probe = {"run_id": "identity"}
    try:
        return step.lookup(probe).paths.step_uid
    except TypeError as error:
        for label in ("context", "scope"):
            for key, value in getattr(step, label).items():
                alone = step.model_copy(update={"context": {}, "scope": {}, label: {key: value}})
                try:
                    _ = alone.lookup(probe).paths.step_uid
                except TypeError:
                    raise TypeError(
                        f"{label}[{key!r}] = {value!r:.80} is a {type(value).__name__}; "
                        f"expected data the experiment can hash into its identity: {UID_TYPES}"
                    ) from error
        raise


def _jsonable(value: Any) -> Any:
    # the folder's identity is compared as JSON; repr stands in for values JSON cannot hold
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def _backend(backend: Backend | Mapping[str, Any] | None, cache: Path) -> Backend:
    """Return the backend with its cache folder set to the experiment's cache folder."""
    if backend is None:
        backend = {"backend": "Cached"}
    if isinstance(backend, Mapping):
        data = dict(backend)
        data.setdefault("backend", "Cached")
        folder = data.get("folder")
        built = Backend.model_validate({**data, "folder": folder or cache})
    elif isinstance(backend, Backend):
        folder = backend.folder
        built = backend.model_copy(update={"folder": folder or cache})
    else:
        raise TypeError(
            f"backend = {backend!r}; expected an assay backend or its dict "
            "(e.g. {'backend': 'ProcessPool'})"
        )
    if "on_code_change" not in built.model_fields_set:
        # The experiment decides about code changes itself, run by run, from its index (the
        # on_code_change of run()); its own step's cache follows that decision.
        built = built.model_copy(update={"on_code_change": "rerun"})
    if "progress" in type(built).model_fields and "progress" not in built.model_fields_set:
        # the experiment draws its own bar over the whole sweep
        built = built.model_copy(update={"progress": False})
    if folder is not None and Path(folder).resolve() != cache.resolve():
        raise ValueError(
            f"backend folder = {str(folder)!r}; an experiment keeps its cache in "
            f"{str(cache)!r}: leave the backend's folder unset"
        )
    return built
