"""Deep freezing: turn a value into one that no reader can change.

Values are frozen once, when they are stored, so every later read is free: a dict becomes a
`FrozenDict` (a ``dict`` that refuses every change), a list a `FrozenList` (likewise a
``list``), a tuple a tuple of frozen items, a set a frozenset, a numpy array a read-only copy.
Frozen dicts and lists keep their items in the built-in storage of ``dict`` and ``list``, so they
compare equal to the plain containers they came from and ``json`` serialises them as it does
those (see ``_frozen.py``); how deeply a value may nest containers is ``_nesting.py``'s.
Objects whose mutability is unknown cannot be frozen; the context keeps a private copy of those
and hands out a fresh copy on every read instead (see ``_context.py``).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import fractions
import pathlib
import reprlib
import sys
import types
import uuid
from collections.abc import Mapping
from typing import Any

from ._nesting import _SCALARS, MAX_NESTING, nesting_depth

# Instances of these types cannot be changed in place, so they are stored as they are.
_IMMUTABLE: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    range,
    decimal.Decimal,
    fractions.Fraction,
    pathlib.PurePath,
    enum.Enum,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    uuid.UUID,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
)


class TooDeep(ValueError):
    """A value nests containers deeper than `MAX_NESTING`; ``depth`` says how deep."""

    def __init__(self, depth: int) -> None:
        super().__init__(
            f"value is nested {depth} levels deep; expected at most {MAX_NESTING} levels of "
            "nested containers"
        )
        self.depth = depth

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.depth,))


class _Deeper(Exception):
    """Raised inside the freezer at the first container nested past `MAX_NESTING`."""


def _inner(depth: int) -> int:
    if depth >= MAX_NESTING:
        raise _Deeper
    return depth + 1


_EXPECTED = (
    "expected None, a number, a string, bytes, a path, a date, an enum member, a mapping, a "
    "list, tuple or set of those, or a numpy array without object dtype"
)


def safe_repr(value: object) -> str:
    """Return ``repr(value)``, shortened when the value is nested too deeply to print."""
    try:
        return repr(value)
    except RecursionError:
        return reprlib.repr(value)


class Unfreezable(TypeError):
    """Raised inside the freezer for a value whose mutability it cannot vouch for."""

    def __init__(self, value: object, problem: str | None = None) -> None:
        reason = problem or _EXPECTED
        super().__init__(
            f"cannot freeze {safe_repr(value)} of type {type(value).__qualname__}: {reason}"
        )
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduction passes the message back to __init__ as the value, which
        # wraps the message in a second one; keep the message and the value as they are.
        return (_restore_unfreezable, (type(self), str(self), self.value))


def _restore_unfreezable(cls: type[Unfreezable], message: str, value: object) -> Unfreezable:
    """Rebuild a pickled ``Unfreezable`` with its message and value."""
    error = cls.__new__(cls)
    TypeError.__init__(error, message)
    error.value = value
    return error


def _numpy() -> Any:
    """Return the numpy module if the program has imported it, else None.

    A value can only be a numpy array if numpy is already imported, so this never imports it:
    numpy stays an optional companion, not a dependency.
    """
    return sys.modules.get("numpy")


_MASKED = (
    "a numpy masked array's mask and fill value cannot be made read-only; store the data and "
    "the mask as two arrays, or value.filled(np.nan)"
)


def is_masked(value: Any) -> bool:
    """Whether ``value`` is a numpy masked array (``np.ma.masked`` included)."""
    np = _numpy()
    return np is not None and isinstance(value, np.ma.MaskedArray)


def freeze_array(array: Any, *, copy: bool = True) -> Any:
    """Return a read-only version of a numpy array (a copy unless ``copy`` is False).

    The result is a view of a read-only base, so its ``writeable`` flag cannot be turned back on.
    """
    if array.dtype.hasobject:
        # The elements of an object array are arbitrary Python objects, mutable through the array.
        raise Unfreezable(array)
    if is_masked(array):
        # Its mask and fill value are separate state that a read-only flag on the data leaves
        # changeable, so a reader could unmask a value for every later reader.
        raise Unfreezable(array, _MASKED)
    base = array.copy() if copy else array
    base.flags.writeable = False
    return base.view()


def freeze_value(value: Any, *, copy_arrays: bool = True) -> Any:
    """Freeze ``value`` deeply, raising `Unfreezable` for an object of unknown mutability.

    ``copy_arrays=False`` is for values that nobody else holds (fresh from unpickling): their
    arrays are locked in place instead of copied. A value that contains itself cannot be
    frozen (a frozen value cannot hold itself): the recursion it causes is reported as
    `Unfreezable`. A value nesting containers deeper than `MAX_NESTING` raises `TooDeep` (a
    ValueError).
    """
    try:
        return _freeze(value, copy_arrays, 0)
    except _Deeper:
        depth = nesting_depth(value)
        if depth is None:  # it contains itself: it may still be copied
            raise Unfreezable(value, "it contains itself") from None
        raise TooDeep(depth) from None
    except RecursionError:
        # Caught once here rather than tracking the path on every call: stores stay fast.
        raise Unfreezable(value, "it contains itself, or is nested too deeply to freeze") from None


def _freeze(value: Any, copy_arrays: bool, depth: int) -> Any:
    # Exact-type checks first: they are what config values and tags nearly always are, and they
    # are much cheaper than isinstance against the ABCs below. ``depth`` counts the containers
    # around ``value``.
    cls = type(value)
    if cls in _SCALARS:
        return value
    if cls is dict:
        inner = _inner(depth)
        return _frozen_dict({key: _freeze(item, copy_arrays, inner) for key, item in value.items()})
    if cls is list:
        inner = _inner(depth)
        return _frozen_list([_freeze(item, copy_arrays, inner) for item in value])
    if cls is tuple:
        inner = _inner(depth)
        return tuple([_freeze(item, copy_arrays, inner) for item in value])
    if cls is FrozenDict or cls is FrozenList:
        return value  # built frozen, never changed afterwards
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, (FrozenDict, FrozenList)):
        return value
    if isinstance(value, Mapping):
        inner = _inner(depth)
        return _frozen_dict({key: _freeze(item, copy_arrays, inner) for key, item in value.items()})
    if isinstance(value, tuple):
        inner = _inner(depth)
        items = tuple(_freeze(item, copy_arrays, inner) for item in value)
        if hasattr(type(value), "_fields"):  # a namedtuple keeps its type and field names
            return type(value)(*items)
        raise Unfreezable(value)
    if isinstance(value, (list, collections.deque)):
        inner = _inner(depth)
        return _frozen_list([_freeze(item, copy_arrays, inner) for item in value])
    if isinstance(value, (set, frozenset)):
        # Set elements are hashable, hence already immutable for all practical purposes.
        return frozenset(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    np = _numpy()
    if np is not None:
        if isinstance(value, np.ndarray):
            return freeze_array(value, copy=copy_arrays)
        if isinstance(value, np.generic) and not isinstance(value, np.object_):
            return value
    raise Unfreezable(value)


def freeze(value: Any) -> Any:
    """Return a deep-frozen equivalent of ``value`` that no reader can change.

    Mappings become `FrozenDict`, lists and deques `FrozenList`, tuples tuples of frozen
    items, sets frozensets, bytearrays bytes and numpy arrays read-only copies; numbers,
    strings, paths, dates, enum members and other immutable values are returned as they are.
    A frozen dict or list is a ``dict`` or ``list`` equal to the original, which ``json``
    serialises as it would the original.

    Args:
        value: The value to freeze.

    Returns:
        The frozen value; the caller's original is left untouched.

    Raises:
        TypeError: If ``value`` holds an object whose mutability is unknown (for example an
            instance of an arbitrary class); the message names it and lists what is accepted.

    Examples:
        >>> frozen = freeze({"layers": [64, 64], "tags": {"a"}})
        >>> frozen
        FrozenDict({'layers': FrozenList([64, 64]), 'tags': frozenset({'a'})})
        >>> frozen == {"layers": [64, 64], "tags": {"a"}}
        True

    """
    return freeze_value(value)


def thaw(value: Any) -> Any:
    """Return a plain, mutable deep copy of a frozen value.

    `FrozenDict` and other mappings become dicts, `FrozenList` and other lists lists,
    frozensets sets and numpy arrays writable copies; tuples (namedtuples included) stay
    tuples, of thawed items. Anything else is returned as it is. ``thaw(freeze(value))``
    equals ``value`` and has the same container types for dicts, lists and tuples.

    Examples:
        >>> thaw(freeze({"layers": [64, 64], "shape": (2, [3])}))
        {'layers': [64, 64], 'shape': (2, [3])}

    """
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    if isinstance(value, tuple):
        items = [thaw(item) for item in value]
        return type(value)(*items) if hasattr(type(value), "_fields") else tuple(items)
    if isinstance(value, frozenset):
        return set(value)
    np = _numpy()
    if np is not None and isinstance(value, np.ndarray):
        return value.copy()
    return value


# ---------------------------------------------------------------------- unpickling

# Here, beside the freezer, rather than with the containers: a pickled FrozenDict or FrozenList
# names these functions by module.


def _unpickle_frozen_dict(data: dict[Any, Any]) -> FrozenDict[Any, Any]:
    # Unpickled arrays come back writable; nobody else holds them, so lock them in place.
    return FrozenDict._wrap({k: freeze_value(v, copy_arrays=False) for k, v in data.items()})


def _unpickle_frozen_list(items: list[Any]) -> FrozenList[Any]:
    # Unpickled arrays come back writable; nobody else holds them, so lock them in place.
    return FrozenList._wrap([freeze_value(item, copy_arrays=False) for item in items])


# Imported last: the frozen containers freeze what they are given with this module's freezer.
from ._frozen import FrozenDict, FrozenList, _frozen_dict, _frozen_list  # noqa: E402
