"""Deep freezing: turn a value into one that no reader can change.

Values are frozen once, when they are stored, so every later read is free: a dict becomes a
`FrozenDict`, a list a tuple, a set a frozenset, a numpy array a read-only copy. Objects
whose mutability is unknown cannot be frozen; the context keeps a private copy of those and hands
out a fresh copy on every read instead (see ``_context.py``).
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
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

_K = TypeVar("_K")
_V_co = TypeVar("_V_co", covariant=True)
_T = TypeVar("_T")

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


_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})


#: Most levels of containers (lists, tuples, dicts, sets) nested in one another that a value
#: may hold where it enters: deeper values are refused with an error naming their key.
MAX_NESTING = 100

_CONTAINERS = (list, tuple, set, frozenset, collections.deque)


def nesting_depth(value: object) -> int | None:
    """Return how many containers are nested in ``value`` (None if it contains itself).

    Lists, tuples, sets, deques and mappings (their values) count; a scalar is 0, ``[]`` is 1,
    ``{"a": [[1]]}`` is 3. It walks without recursion, so any depth can be measured.

    Example:
        >>> nesting_depth(5), nesting_depth([]), nesting_depth({"a": [[1]]})
        (0, 1, 3)

    """

    def children(item: object) -> Iterator[object] | None:
        if isinstance(item, Mapping):
            return iter(item.values())
        if isinstance(item, _CONTAINERS):
            return iter(item)
        return None

    top = children(value)
    if top is None:
        return 0
    done: dict[int, int] = {}  # depth of containers already measured (shared parts count once)
    path = {id(value)}
    stack: list[tuple[int, Iterator[object], int]] = [(id(value), top, 0)]
    while stack:
        ident, items, deepest = stack[-1]
        for item in items:
            if type(item) in _SCALARS:  # the common case: no container, no ABC check
                continue
            inner = children(item)
            if inner is None:
                continue
            if id(item) in done:
                deepest = max(deepest, done[id(item)])
                continue
            if id(item) in path:
                return None
            stack[-1] = (ident, items, deepest)
            path.add(id(item))
            stack.append((id(item), inner, 0))
            break
        else:
            stack.pop()
            path.discard(ident)
            done[ident] = deepest + 1
            if stack:
                parent, rest, best = stack[-1]
                stack[-1] = (parent, rest, max(best, deepest + 1))
    return done[id(value)]


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
    frozen (a tuple cannot hold itself): the recursion it causes is reported as `Unfreezable`.
    A value nesting containers deeper than `MAX_NESTING` raises `TooDeep` (a ValueError).
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
        return FrozenDict._wrap(
            {key: _freeze(item, copy_arrays, inner) for key, item in value.items()}
        )
    if cls is list or cls is tuple:
        inner = _inner(depth)
        return tuple([_freeze(item, copy_arrays, inner) for item in value])
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, FrozenDict):
        return value  # built frozen, never changed afterwards
    if isinstance(value, Mapping):
        inner = _inner(depth)
        return FrozenDict._wrap(
            {key: _freeze(item, copy_arrays, inner) for key, item in value.items()}
        )
    if isinstance(value, tuple):
        inner = _inner(depth)
        items = tuple(_freeze(item, copy_arrays, inner) for item in value)
        if type(value) is tuple:
            return items
        if hasattr(type(value), "_fields"):  # a namedtuple keeps its type and field names
            return type(value)(*items)
        raise Unfreezable(value)
    if isinstance(value, (list, collections.deque)):
        inner = _inner(depth)
        return tuple(_freeze(item, copy_arrays, inner) for item in value)
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

    Mappings become `FrozenDict`, lists and deques tuples, sets frozensets, bytearrays
    bytes and numpy arrays read-only copies; numbers, strings, paths, dates, enum members and
    other immutable values are returned as they are.

    Args:
        value: The value to freeze.

    Returns:
        The frozen value; the caller's original is left untouched.

    Raises:
        TypeError: If ``value`` holds an object whose mutability is unknown (for example an
            instance of an arbitrary class); the message names it and lists what is accepted.

    Example:
        >>> freeze({"layers": [64, 64], "tags": {"a"}})
        FrozenDict({'layers': (64, 64), 'tags': frozenset({'a'})})

    """
    return freeze_value(value)


def thaw(value: Any) -> Any:
    """Return a plain, mutable deep copy of a frozen value.

    `FrozenDict` and other mappings become dicts, tuples lists (namedtuples stay
    namedtuples), frozensets sets and numpy arrays writable copies; anything else is returned
    as it is. Useful to serialise a context value to JSON or to start a modified copy.

    Example:
        >>> thaw(freeze({"layers": [64, 64]}))
        {'layers': [64, 64]}

    """
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        items = [thaw(item) for item in value]
        return type(value)(*items) if hasattr(type(value), "_fields") else items
    if isinstance(value, frozenset):
        return set(value)
    np = _numpy()
    if np is not None and isinstance(value, np.ndarray):
        return value.copy()
    return value


class FrozenDict(Mapping[_K, _V_co]):
    """A read-only, picklable mapping whose values are deep-frozen.

    It compares equal to a dict with the same items, is hashable when its values are, and
    pickles and unpickles as a `FrozenDict` (unlike ``types.MappingProxyType``).

    Example:
        >>> settings = FrozenDict({"optimizer": {"lr": 0.1}})
        >>> settings["optimizer"].get("lr")
        0.1
        >>> settings == {"optimizer": {"lr": 0.1}}
        True

    """

    __slots__ = ("_data", "_hash")

    _data: dict[_K, _V_co]
    _hash: int | None

    def __init__(self, data: Mapping[_K, _V_co] | Iterable[tuple[_K, _V_co]] = (), /) -> None:
        items = data.items() if isinstance(data, Mapping) else data
        self._data = {key: freeze(item) for key, item in items}
        self._hash = None

    @classmethod
    def _wrap(cls, data: dict[_K, _T]) -> FrozenDict[_K, _T]:
        """Adopt a dict whose values are already frozen, without copying it again."""
        new: FrozenDict[_K, _T] = object.__new__(cls)  # type: ignore[arg-type]
        new._data = data
        new._hash = None
        return new

    def __getitem__(self, key: _K) -> _V_co:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __or__(self, other: Mapping[_K, Any]) -> FrozenDict[_K, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return FrozenDict._wrap({**self._data, **{k: freeze(v) for k, v in other.items()}})

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[Any, tuple[dict[_K, _V_co]]]:
        return (_unpickle_frozen_dict, (self._data,))


def _unpickle_frozen_dict(data: dict[Any, Any]) -> FrozenDict[Any, Any]:
    # Unpickled arrays come back writable; nobody else holds them, so lock them in place.
    return FrozenDict._wrap({k: freeze_value(v, copy_arrays=False) for k, v in data.items()})
