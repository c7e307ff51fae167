"""The frozen containers: `FrozenDict` and `FrozenList`, a dict and a list that refuse change.

They keep their items in the built-in storage of ``dict`` and ``list``, so they compare equal to
the plain containers they came from and ``json`` serialises them as it does those. Their items
are frozen when they are built (see ``_freeze.py``, whose freezer builds them from values
already frozen, without freezing twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")
_T = TypeVar("_T")

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


# Imported last: the freezer builds these containers, and they freeze what they are given.
from ._freeze import (  # noqa: E402
    _unpickle_frozen_dict,
    _unpickle_frozen_list,
    freeze,
    safe_repr,
)
