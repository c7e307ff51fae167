"""FrozenMetrics: append-only series of validated metric values with their tags."""

from __future__ import annotations

import numbers
import operator
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ._freeze import (
    Unfreezable,
    _numpy,
    freeze_array,
    freeze_value,
    is_masked,
    safe_repr,
)
from ._frozen import FrozenDict
from ._nesting import _SCALARS

# Words of letters, digits and underscores joined by '.' or '-', not starting with a digit:
# "loss", "val.loss", "top-1_acc". Such names are safe as column names, file names and CLI keys.
_NAME = re.compile(r"[^\W\d]\w*(?:[.-]\w+)*")

_NO_TAGS: FrozenDict[str, Any] = FrozenDict()
_VALUE = operator.itemgetter(0)  # of a (value, tags) pair
_TAGS = operator.itemgetter(1)

# Exact types accepted without further checks: the common case of record() stays fast.
_FAST_VALUE_TYPES = frozenset({int, float, str})


def check_metric_name(name: object) -> str:
    """Return ``name`` if it is a valid metric name, else raise a clear error."""
    if not isinstance(name, str):
        raise TypeError(f"metric name {name!r} has type {type(name).__qualname__}; expected a str")
    if _NAME.fullmatch(name) is None:
        raise ValueError(
            f"metric name {name!r} is not valid: expected a non-empty identifier-like name "
            "(letters, digits and '_', parts joined by '.' or '-', not starting with a digit), "
            "such as 'loss' or 'val.accuracy'"
        )
    return name


def check_metric_value(name: str, value: object) -> Any:
    """Return ``value`` ready to store (arrays read-only), or raise naming metric and value."""
    if isinstance(value, (numbers.Number, str)):
        return value
    np = _numpy()
    if np is not None:
        if is_masked(value):
            # Writers keep an array's data only: masked-out (invalid) values would come back as
            # real ones, and np.ma.masked (the mean of nothing) as 0.0.
            raise TypeError(
                f"metric {name!r}: value {safe_repr(value)} is a numpy masked array, which is "
                "not accepted: its mask would be lost when the record is saved; record "
                "value.filled(np.nan) (masked values become NaN) or value.compressed() (the "
                "values not masked)"
            )
        if isinstance(value, np.generic) and value.dtype.kind in "biufcUS":
            return value
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufcUS":
            return freeze_array(value)
    raise TypeError(
        f"metric {name!r}: value {value!r} of type {type(value).__qualname__} is not accepted; "
        "expected a number, a string, or a numpy scalar or array of numbers, booleans or strings"
    )


def check_tags(name: str, tags: object) -> FrozenDict[str, Any]:
    """Return ``tags`` as a frozen mapping with string keys, or raise naming the metric."""
    if tags is None:
        return _NO_TAGS
    if type(tags) is dict:
        # The usual tags ({"epoch": 3, "split": "val"}) need only a shallow copy to be frozen.
        for key, value in tags.items():
            if type(key) is not str or type(value) not in _SCALARS:
                break
        else:
            return FrozenDict._wrap(tags)
    if not isinstance(tags, Mapping):
        raise TypeError(
            f"metric {name!r}: tags {tags!r} of type {type(tags).__qualname__} are not accepted; "
            "expected a mapping from str to values, or None"
        )
    for key in tags:
        if not isinstance(key, str):
            raise TypeError(f"metric {name!r}: tag key {key!r} is not a str")
    try:
        frozen: FrozenDict[str, Any] = freeze_value(tags)
    except Unfreezable as error:
        raise TypeError(f"metric {name!r}: tags {safe_repr(tags)}: {error}") from None
    return frozen


class FrozenMetrics:
    """Append-only record of metric values, each kept with the tags it was recorded with.

    Values are never replaced: `add` appends to the series of a metric, and readers get
    tuples of values and copies of the tags, so nothing already recorded can be changed.

    Examples:
        >>> metrics = FrozenMetrics()
        >>> metrics.add("loss", 0.9, tags={"epoch": 1})
        >>> metrics.add("loss", 0.5, tags={"epoch": 2})
        >>> metrics["loss"]
        (0.9, 0.5)
        >>> metrics.get_tags("loss")[1].get("epoch")
        2

    """

    __slots__ = ("_series",)

    def __init__(self) -> None:
        # Each value is kept with its tags in one (value, tags) pair, so that a series grows by
        # one list append, atomic between threads: threads of one run recording at once lose
        # nothing and never pair a value with another's tags, at no cost to the common case.
        self._series: dict[str, list[tuple[Any, FrozenDict[str, Any]]]] = {}

    def add(self, key: str, value: Any, tags: Mapping[str, Any] | None = None) -> None:
        """Append ``value`` to the series of metric ``key``, with optional ``tags``.

        Args:
            key: Metric name: identifier-like, such as ``"loss"`` or ``"val.accuracy"``.
            value: A number, a string, or a numpy scalar or array (stored read-only).
            tags: Optional mapping from str to values describing this measurement
                (epoch, split, ...); kept and returned by `get_tags`.

        Raises:
            TypeError: If the name is not a str, the value is of another kind, or the tags are
                not a mapping with str keys and freezable values.
            ValueError: If the name is empty or not identifier-like.

        """
        # A non-str key is refused by the name check, with a clearer message than dict.get's.
        series = self._series.get(key) if type(key) is str else None
        if series is None:
            check_metric_name(key)
        if type(value) not in _FAST_VALUE_TYPES:
            value = check_metric_value(key, value)
        frozen_tags = _NO_TAGS if tags is None else check_tags(key, tags)
        if series is None:
            # setdefault: of two threads creating the series at once, both get the same list.
            series = self._series.setdefault(key, [])
        series.append((value, frozen_tags))

    def __getitem__(self, key: str) -> tuple[Any, ...]:
        """Return the values of ``key`` in recording order; ``()`` if it was never recorded."""
        # Like the reference an unknown metric reads as empty, but reading never creates it.
        series = self._series.get(key)
        return () if series is None else tuple(map(_VALUE, series))

    def get_tags(self, key: str) -> tuple[dict[str, Any], ...]:
        """Return the tags recorded with each value of ``key``, as plain ``dict`` copies.

        One dict per value in recording order, ``{}`` for a value recorded without tags, and
        ``()`` for a metric never recorded. Each dict is a new copy, so changing it changes
        nothing recorded; tag values are frozen (a list is a `FrozenList`), as stored.

        Examples:
            >>> metrics = FrozenMetrics()
            >>> metrics.add("loss", 0.9, tags={"epoch": 1})
            >>> metrics.add("loss", 0.5)
            >>> metrics.get_tags("loss")
            ({'epoch': 1}, {})

        """
        series = self._series.get(key)
        return () if series is None else tuple([dict(tags) for _, tags in series])

    def as_dict(self) -> Mapping[str, tuple[Any, ...]]:
        """Return a read-only snapshot: metric name → tuple of values, in recording order."""
        # dict.copy() takes the names at once: another thread may add a metric meanwhile.
        return FrozenDict._wrap(
            {key: tuple(map(_VALUE, series)) for key, series in self._series.copy().items()}
        )

    def extend(self, other: FrozenMetrics) -> None:
        """Append every value and tags of ``other`` after the values recorded here.

        Useful to gather the metrics a worker process recorded back into the parent's record.
        """
        for key, series in other._series.copy().items():
            self._series.setdefault(key, []).extend(list(series))

    def __contains__(self, key: object) -> bool:
        return key in self._series

    def __iter__(self) -> Iterator[str]:
        """Iterate over metric names in the order they were first recorded."""
        return iter(self._series)

    def __len__(self) -> int:
        """Return the number of distinct metrics recorded."""
        return len(self._series)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrozenMetrics):
            return NotImplemented
        return self._series == other._series

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FrozenMetrics({dict(self.as_dict())!r})"

    def __getstate__(self) -> tuple[dict[str, list[Any]], dict[str, list[FrozenDict[str, Any]]]]:
        # Pickled as two mappings, names to values and names to tags, as before the pairs.
        series = {key: list(pairs) for key, pairs in self._series.copy().items()}
        values = {key: list(map(_VALUE, pairs)) for key, pairs in series.items()}
        tags = {key: list(map(_TAGS, pairs)) for key, pairs in series.items()}
        return (values, tags)

    def __setstate__(
        self, state: tuple[dict[str, list[Any]], dict[str, list[FrozenDict[str, Any]]]]
    ) -> None:
        values, tags = state
        # Unpickled arrays come back writable: lock them again (they are private copies).
        np = _numpy()
        if np is not None:
            for series in values.values():
                for index, value in enumerate(series):
                    if isinstance(value, np.ndarray):
                        series[index] = freeze_array(value, copy=False)
        self._series = {key: list(zip(values[key], tags[key], strict=True)) for key in values}
