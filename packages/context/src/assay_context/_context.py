"""FrozenContext: experiment state in which a value, once set, is what every reader sees."""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

from ._artifacts import ArtifactLog
from ._errors import ContextMutationError
from ._freeze import TooDeep, Unfreezable, _numpy, freeze_value, safe_repr
from ._frozen import FrozenDict
from ._metrics import FrozenMetrics

_DEFAULT_LOGGER = "assay.context"


class _CopyOnRead:
    """Holds a private copy of a value that cannot be frozen; readers get fresh copies."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[type[_CopyOnRead], tuple[Any]]:
        return (_CopyOnRead, (self.value,))


def _already_set(key: str, present: Any) -> ContextMutationError:
    return ContextMutationError(
        f"context key {key!r} is already set to {present!r}; a value set once "
        "cannot be changed: add a new key instead"
    )


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"context key {key!r} has type {type(key).__qualname__}; expected a str")
    return key


def _store(key: str, value: Any, *, copy_arrays: bool = True) -> Any:
    """Return what the context keeps for ``value``: its frozen form, or a guarded copy."""
    try:
        return freeze_value(value, copy_arrays=copy_arrays)
    except Unfreezable:
        pass
    except TooDeep as error:
        raise ValueError(f"context key {key!r}: {error}") from None
    try:
        return _CopyOnRead(copy.deepcopy(value))
    except Exception as error:
        raise TypeError(
            f"context key {key!r}: value {safe_repr(value)} of type {type(value).__qualname__} "
            f"can be neither frozen nor copied ({error}); expected a freezable value (numbers, "
            "strings, mappings, sequences, sets, numpy arrays) or a deep-copyable object"
        ) from error


def _has_copies(data: dict[str, Any]) -> bool:
    return any(type(value) is _CopyOnRead for value in data.values())


def _same(stored: Any, other: Any) -> bool:
    """Whether two stored values are the same value: same type and equal content.

    Equality falls back to comparing pickles, so that values which came back from another
    process (objects without ``__eq__``, NaN) still match the originals they were copied from.
    """
    if stored is other:
        return True
    if type(stored) is not type(other):
        return False
    if isinstance(stored, _CopyOnRead):
        return _same(stored.value, other.value)
    np = _numpy()
    if np is not None and isinstance(stored, np.ndarray):
        return bool(
            stored.dtype == other.dtype
            and stored.shape == other.shape
            and stored.tobytes() == other.tobytes()
        )
    try:
        if stored == other:
            return True
    except Exception:
        pass
    try:
        return pickle.dumps(stored) == pickle.dumps(other)
    except Exception:
        return False


class FrozenContext(Mapping[str, Any]):
    """Shared state of a run in which a value, once set, can never change.

    Keys are added with `add` or ``ctx[key] = value``; setting a key that exists raises
    `ContextMutationError`. Values are deep-frozen when stored (dicts become read-only
    `FrozenDict`, lists read-only `FrozenList`, sets frozensets, numpy arrays read-only
    copies), so a reader cannot change what later readers see, and reads cost no copy. A
    frozen dict or list is a ``dict`` or ``list`` equal to the original and serialisable with
    ``json``. A value whose
    mutability is unknown (an instance of an arbitrary class) is deep-copied when stored and on
    every read instead.

    The context is a read-only `collections.abc.Mapping`: ``in``, ``len``, iteration,
    ``keys()``, ``items()`` work. It pickles with its metrics and artifacts.

    Args:
        initial: The first keys and values.
        logger: Logger for the run; defaults to the ``assay.context`` logger.

    Attributes:
        metrics: The run's `FrozenMetrics`.
        artifacts: The run's `ArtifactLog`.
        logger: The run's `logging.Logger`.

    Examples:
        >>> ctx = FrozenContext({"lr": 0.01, "layers": [64, 64]})
        >>> ctx.add("seed", 7)
        >>> ctx["layers"]
        FrozenList([64, 64])
        >>> ctx["layers"] == [64, 64]
        True
        >>> "seed" in ctx, len(ctx)
        (True, 3)
        >>> ctx.record("loss", 0.25, tags={"epoch": 1})
        >>> ctx.metrics.as_dict()["loss"]
        (0.25,)

    """

    __slots__ = ("_copies", "_data", "artifacts", "logger", "metrics")

    _data: dict[str, Any]
    _copies: bool  # whether any value is a _CopyOnRead: most contexts have none
    metrics: FrozenMetrics
    artifacts: ArtifactLog
    logger: logging.Logger

    def __init__(self, initial: Mapping[str, Any], logger: logging.Logger | None = None) -> None:
        if not isinstance(initial, Mapping):
            raise TypeError(
                f"initial context {initial!r} has type {type(initial).__qualname__}; "
                "expected a mapping from str keys to values"
            )
        self._data = {_check_key(key): _store(key, value) for key, value in initial.items()}
        self._copies = _has_copies(self._data)
        self.metrics = FrozenMetrics()
        self.artifacts = ArtifactLog()
        self.logger = logger if logger is not None else logging.getLogger(_DEFAULT_LOGGER)

    # ------------------------------------------------------------------ reading

    def __getitem__(self, key: str) -> Any:
        if self._copies:
            value = self._data[key]
            return copy.deepcopy(value.value) if type(value) is _CopyOnRead else value
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` if the key is not set."""
        # The common case, no guarded copies, is a single dict lookup: reads are hot in steps.
        if self._copies:
            value = self._data.get(key, default)
            return copy.deepcopy(value.value) if type(value) is _CopyOnRead else value
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def as_dict(self) -> Mapping[str, Any]:
        """Return a read-only snapshot of every key and value (a picklable `FrozenDict`).

        Keys added later do not appear in the snapshot. It is a ``dict``, so ``json.dumps``
        serialises it when the values are JSON data.

        Examples:
            >>> import json
            >>> ctx = FrozenContext({"lr": 0.1, "layers": [64, 64]})
            >>> json.dumps(ctx.as_dict())
            '{"lr": 0.1, "layers": [64, 64]}'

        """
        # dict.copy() takes the items at once, running no Python code (iterating the live dict
        # while values are deep-copied would let another thread's add end it in RuntimeError).
        return FrozenDict._wrap(
            {
                key: copy.deepcopy(value.value) if type(value) is _CopyOnRead else value
                for key, value in self._data.copy().items()
            }
        )

    # ------------------------------------------------------------------ writing

    def add(self, key: str, value: Any) -> None:
        """Add a new key; the value is frozen (or copied) so that later changes cannot reach it.

        Raises:
            ContextMutationError: If ``key`` is already set.
            TypeError: If ``key`` is not a str, or ``value`` can be neither frozen nor copied.
            ValueError: If ``value`` nests containers more than ``MAX_NESTING`` (100) deep.

        """
        if _check_key(key) in self._data:
            raise _already_set(key, self._data[key])
        stored = _store(key, value)
        # Freezing or copying can take a while, and another thread may have set the key
        # meanwhile: setdefault stores only if it is still absent, atomically, so exactly one
        # thread sets it and the others are refused (a LoggingContext shares this dict).
        present = self._data.setdefault(key, stored)
        if present is not stored:
            raise _already_set(key, present)
        if type(stored) is _CopyOnRead:
            self._copies = True

    def __setitem__(self, key: str, value: Any) -> None:
        self.add(key, value)

    def record(self, metric_name: str, value: Any, tags: Mapping[str, Any] | None = None) -> None:
        """Record a metric value with optional tags (same as ``ctx.metrics.add``).

        Examples:
            >>> ctx = FrozenContext({})
            >>> ctx.record("loss", 0.5, tags={"epoch": 1, "split": "train"})
            >>> ctx.metrics.get_tags("loss")[0].get("split")
            'train'

        """
        self.metrics.add(metric_name, value, tags)

    # ------------------------------------------------------------------ steps

    def child(self) -> FrozenContext:
        """Return a view for a step: it sees every key here, can add keys, never overwrite.

        The child starts with this context's keys (a snapshot; values are shared, not copied,
        since they are frozen) and shares its metrics, artifacts and logger, so what the step
        records lands in the run's record. Keys the step adds stay in the child until
        `merge` brings them back.

        Examples:
            >>> run = FrozenContext({"lr": 0.1})
            >>> step = run.child()
            >>> step.add("weights", [0.5, 0.25])
            >>> "weights" in run
            False
            >>> run.merge(step)
            >>> run["weights"]
            FrozenList([0.5, 0.25])

        """
        child: FrozenContext = object.__new__(FrozenContext)
        child._data = dict(self._data)
        child._copies = self._copies
        child.metrics = self.metrics
        child.artifacts = self.artifacts
        child.logger = self.logger
        return child

    def merge(self, other: Mapping[str, Any]) -> None:
        """Adopt the keys of ``other`` (a child context or any mapping) that are not set here.

        A key present in both must hold the same value (same type and content); otherwise
        nothing is merged and `ContextMutationError` names the clashing keys. Metrics and
        artifacts are not merged: a child shares them already (use ``metrics.extend`` and
        ``artifacts.extend`` for those of an unrelated context).
        """
        if isinstance(other, FrozenContext):
            incoming = dict(other._data)
        elif isinstance(other, Mapping):
            incoming = {_check_key(key): _store(key, value) for key, value in other.items()}
        else:
            raise TypeError(
                f"cannot merge {other!r} of type {type(other).__qualname__}; "
                "expected a FrozenContext or a mapping"
            )
        clashes = [
            key
            for key, value in incoming.items()
            if key in self._data and not _same(self._data[key], value)
        ]
        if clashes:
            raise ContextMutationError(
                f"cannot merge: context keys {clashes!r} are already set to other values"
            )
        for key, value in incoming.items():
            self._data.setdefault(key, value)
        self._copies = _has_copies(self._data)

    # ------------------------------------------------------------------ pickling, repr

    def __getstate__(self) -> dict[str, Any]:
        return {
            "data": self._data.copy(),  # a copy: another thread may add keys while pickling
            "metrics": self.metrics,
            "artifacts": self.artifacts,
            "logger": self.logger,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled arrays come back writable; they are private copies, so lock them in place.
        self._data = {
            key: value if type(value) is _CopyOnRead else _store(key, value, copy_arrays=False)
            for key, value in state["data"].items()
        }
        self._copies = _has_copies(self._data)
        self.metrics = state["metrics"]
        self.artifacts = state["artifacts"]
        self.logger = state["logger"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.as_dict())!r})"
