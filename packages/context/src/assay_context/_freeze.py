"""Deep freezing: turn a value into one that no reader can change.

Values are frozen once, when they are stored, so every later read is free: a dict becomes a
`FrozenDict` (a ``dict`` that refuses every change), a list a `FrozenList` (likewise a
``list``), a tuple a tuple of frozen items, a set a frozenset, a numpy array a read-only copy.
Frozen dicts and lists keep their items in the built-in storage of ``dict`` and ``list``, so they
compare equal to the plain containers they came from and ``json`` serialises them as it does
those. Objects whose mutability is unknown cannot be frozen; the context keeps a private copy of
those and hands out a fresh copy on every read instead (see ``_context.py``).
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
from typing import Any, NoReturn, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")
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

    Examples:
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


# ---------------------------------------------------------------------- frozen containers

_SHORT = 120  # longest repr of a value that an error message quotes whole


def _read_only(value: object, action: str) -> TypeError:
    """Return the error for an attempt to change a frozen container: what was tried, on what."""
    text = safe_repr(value)
    if len(text) > _SHORT:
        text = f"{text[: _SHORT - 30]}...{text[-25:]}"
    return TypeError(
        f"cannot {action} {text}: a frozen value is read-only, so that every reader sees the "
        "value that was stored; thaw() it for a mutable copy"
    )


class FrozenDict(dict[_K, _V]):
    """A read-only ``dict`` whose values are deep-frozen.

    It is a real ``dict`` (``isinstance(d, dict)`` holds, ``json`` serialises it, it compares
    equal to the dict it was made from), but every way of changing it raises ``TypeError``:
    item assignment and deletion, ``clear``, ``pop``, ``popitem``, ``setdefault``, ``update``,
    ``|=`` and attribute assignment. Operations that build a new dict (``copy()``, ``dict(d)``,
    ``{**d}``) give a plain, mutable one; ``d | other`` gives a new `FrozenDict`. It is
    hashable when its values are, and pickles and copies as a `FrozenDict` (unlike
    ``types.MappingProxyType``).

    Only C code that writes into a dict's storage directly gets past it: ``dict``'s own methods
    called on it (``dict.__setitem__(d, k, v)``), and ``exec`` or ``eval`` given it as their
    globals (they add ``__builtins__``). Do not hand a frozen value to those.

    Examples:
        >>> settings = FrozenDict({"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}})
        >>> optimizer = settings["optimizer"]
        >>> optimizer.get("betas")
        FrozenList([0.9, 0.99])
        >>> settings == {"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}}
        True
        >>> import json
        >>> json.dumps(settings)
        '{"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}}'
        >>> optimizer["lr"] = 1.0
        Traceback (most recent call last):
        ...
        TypeError: cannot set key 'lr' in FrozenDict({'lr': 0.1, ...

    """

    __slots__ = ("_hash",)

    _hash: int  # set on the first hash(): the value cannot change, so neither can its hash

    def __new__(cls, data: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = (), /) -> FrozenDict[_K, _V]:
        items = data.items() if isinstance(data, Mapping) else data
        new: FrozenDict[_K, _V] = _DICT_NEW(cls)
        _DICT_UPDATE(new, {key: freeze(item) for key, item in items})
        return new

    def __init__(self, data: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = (), /) -> None:
        """Do nothing: the items are set by ``__new__``, so calling this again changes nothing."""

    @staticmethod
    def _wrap(data: dict[_K, _T]) -> FrozenDict[_K, _T]:
        """Adopt the items of a dict whose values are already frozen, without freezing again."""
        return _frozen_dict(data)

    @classmethod
    def fromkeys(cls, keys: Iterable[_T], value: Any = None, /) -> FrozenDict[_T, Any]:
        """Return a `FrozenDict` mapping each of ``keys`` to ``value`` (frozen once)."""
        frozen = freeze(value)
        return FrozenDict._wrap(dict.fromkeys(keys, frozen))

    # Every way of changing a dict in place is refused.

    def __setitem__(self, key: _K, value: _V, /) -> NoReturn:
        raise _read_only(self, f"set key {key!r} in")

    def __delitem__(self, key: _K, /) -> NoReturn:
        raise _read_only(self, f"delete key {key!r} from")

    def __ior__(self, other: Any, /) -> NoReturn:  # type: ignore[misc]
        raise _read_only(self, "update (|=)")

    def clear(self) -> NoReturn:
        """Refuse: a `FrozenDict` is read-only."""
        raise _read_only(self, "clear")

    def pop(self, key: Any, /, *default: Any) -> NoReturn:
        """Refuse: a `FrozenDict` is read-only."""
        raise _read_only(self, f"pop key {key!r} from")

    def popitem(self) -> NoReturn:
        """Refuse: a `FrozenDict` is read-only."""
        raise _read_only(self, "popitem from")

    def setdefault(self, key: Any, default: Any = None, /) -> NoReturn:
        """Refuse: a `FrozenDict` is read-only."""
        raise _read_only(self, f"setdefault key {key!r} in")

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refuse: a `FrozenDict` is read-only."""
        raise _read_only(self, "update")

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise _read_only(self, f"set attribute {name!r} of")

    def __delattr__(self, name: str) -> NoReturn:
        raise _read_only(self, f"delete attribute {name!r} of")

    # Building new values.

    def __or__(self, other: Mapping[_K, Any], /) -> FrozenDict[_K, Any]:  # type: ignore[override]
        if not isinstance(other, Mapping):
            return NotImplemented
        return FrozenDict._wrap({**self, **{k: freeze(v) for k, v in other.items()}})

    def __copy__(self) -> FrozenDict[_K, _V]:
        return self  # nothing can change it: a copy would be the same value

    def __hash__(self) -> int:  # type: ignore[override]
        try:
            return self._hash
        except AttributeError:
            value = hash(frozenset(dict.items(self)))
            object.__setattr__(self, "_hash", value)
            return value

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, tuple[dict[_K, _V]]]:
        # A dict subclass is otherwise rebuilt item by item through __setitem__, which refuses.
        return (_unpickle_frozen_dict, (dict(self),))


def _unpickle_frozen_dict(data: dict[Any, Any]) -> FrozenDict[Any, Any]:
    # Unpickled arrays come back writable; nobody else holds them, so lock them in place.
    return FrozenDict._wrap({k: freeze_value(v, copy_arrays=False) for k, v in data.items()})


class FrozenList(list[_T]):
    """A read-only ``list`` whose items are deep-frozen.

    It is a real ``list`` (``isinstance(x, list)`` holds, ``json`` serialises it, it compares
    equal to the list it was made from and, like a list, unequal to a tuple), but every way of
    changing it raises ``TypeError``: item and slice assignment and deletion, ``append``,
    ``extend``, ``insert``, ``pop``, ``remove``, ``clear``, ``sort``, ``reverse``, ``+=``,
    ``*=`` and attribute assignment. Operations that build a new list (``x + y``, ``x * 2``,
    slices, ``copy()``, ``list(x)``, ``sorted(x)``) give a plain, mutable one. It is
    hashable when its items are, and pickles and copies as a `FrozenList`.

    Only C code that writes into a list's storage directly gets past it: ``list``'s own
    methods called on it (``list.append(x, 1)``), and the ``heapq`` functions, which accept
    any list. Do not hand a frozen value to those; ``thaw()`` it first.

    Examples:
        >>> layers = FrozenList([64, [32, 16]])
        >>> layers == [64, [32, 16]], layers[1]
        (True, FrozenList([32, 16]))
        >>> longer = layers + [8]
        >>> longer
        [64, FrozenList([32, 16]), 8]
        >>> layers.append(8)
        Traceback (most recent call last):
        ...
        TypeError: cannot append to FrozenList([64, FrozenList([32, 16])]): a frozen value ...

    """

    __slots__ = ()

    def __new__(cls, items: Iterable[_T] = (), /) -> FrozenList[_T]:
        new: FrozenList[_T] = _LIST_NEW(cls)
        _LIST_EXTEND(new, [freeze(item) for item in items])
        return new

    def __init__(self, items: Iterable[_T] = (), /) -> None:
        """Do nothing: the items are set by ``__new__``, so calling this again changes nothing."""

    @staticmethod
    def _wrap(items: list[_T]) -> FrozenList[_T]:
        """Adopt a list of already frozen items, without freezing them again."""
        return _frozen_list(items)

    # Every way of changing a list in place is refused.

    def __setitem__(self, index: Any, value: Any, /) -> NoReturn:
        raise _read_only(self, f"set item {index!r} of")

    def __delitem__(self, index: Any, /) -> NoReturn:
        raise _read_only(self, f"delete item {index!r} of")

    def __iadd__(self, other: Any, /) -> NoReturn:  # type: ignore[misc]
        raise _read_only(self, "extend (+=)")

    def __imul__(self, count: Any, /) -> NoReturn:  # type: ignore[misc]
        raise _read_only(self, "repeat (*=)")

    def append(self, item: Any, /) -> NoReturn:
        """Refuse: a `FrozenList` is read-only."""
        raise _read_only(self, "append to")

    def extend(self, items: Any, /) -> NoReturn:
        """Refuse: a `FrozenList` is read-only."""
        raise _read_only(self, "extend")

    def insert(self, index: Any, item: Any, /) -> NoReturn:
        """Refuse: a `FrozenList` is read-only."""
        raise _read_only(self, "insert into")

    def pop(self, index: Any = -1, /) -> NoReturn:
        """Refuse: a `FrozenList` is read-only."""
        raise _read_only(self, "pop from")

    def remove(self, item: Any, /) -> NoReturn:
        """Refuse: a `FrozenList` is read-only."""
        raise _read_only(self, "remove from")

    def clear(self) -> NoReturn:
        """Refuse: a `FrozenList` is read-only."""
        raise _read_only(self, "clear")

    def sort(self, *, key: Any = None, reverse: bool = False) -> NoReturn:
        """Refuse: a `FrozenList` is read-only (``sorted(x)`` gives a sorted plain list)."""
        raise _read_only(self, "sort")

    def reverse(self) -> NoReturn:
        """Refuse: a `FrozenList` is read-only (``x[::-1]`` gives a reversed plain list)."""
        raise _read_only(self, "reverse")

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise _read_only(self, f"set attribute {name!r} of")

    def __delattr__(self, name: str) -> NoReturn:
        raise _read_only(self, f"delete attribute {name!r} of")

    # Copies, hashing, pickling.

    def __copy__(self) -> FrozenList[_T]:
        return self  # nothing can change it: a copy would be the same value

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"FrozenList({list.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, tuple[list[_T]]]:
        # A list subclass is otherwise rebuilt through extend or append, which refuse.
        return (_unpickle_frozen_list, (list(self),))


def _unpickle_frozen_list(items: list[Any]) -> FrozenList[Any]:
    # Unpickled arrays come back writable; nobody else holds them, so lock them in place.
    return FrozenList._wrap([freeze_value(item, copy_arrays=False) for item in items])


# Built by the C-level methods of dict and list: FrozenDict and FrozenList refuse their own.
_DICT_NEW = dict.__new__
_DICT_UPDATE = dict.update
_LIST_NEW = list.__new__
_LIST_EXTEND = list.extend


def _frozen_dict(data: dict[_K, _T]) -> FrozenDict[_K, _T]:
    """Return a `FrozenDict` of the items of ``data``, whose values are already frozen."""
    new: FrozenDict[_K, _T] = _DICT_NEW(FrozenDict)
    _DICT_UPDATE(new, data)
    return new


def _frozen_list(items: list[_T]) -> FrozenList[_T]:
    """Return a `FrozenList` of ``items``, which are already frozen."""
    new: FrozenList[_T] = _LIST_NEW(FrozenList)
    _LIST_EXTEND(new, items)
    return new
