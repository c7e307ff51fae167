"""Accessors: the objects behind ``ps.train.lr``, which read, default, convert and write a key."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._convert import convert
from ._errors import MissingParameterError
from ._state import RECORDING, ROOT, get_current, note, pin


class _Missing:
    """The type of the "no default given" marker, so that None can be a default."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no default>"


MISSING: Any = _Missing()
#: Marks a key absent from a dict in one lookup (None can be a stored value).
_ABSENT: Any = object()


def join(prefix: str, name: str) -> str:
    """Append ``name`` to a dotted ``prefix`` (the root accessor has an empty prefix)."""
    return f"{prefix}.{name}" if prefix else name


def _bound_reader(key: str, chain: tuple[dict[str, Any], ...]) -> Callable[..., Any]:
    """Return the function that reads ``key`` from a fixed chain: ``ps.key(default)``."""

    def read(default: Any = MISSING) -> Any:
        # The chain holds the scope's own values first, then each enclosing scope's; the
        # first dict is read before the loop (one hash lookup) because most reads end there.
        value = chain[0].get(key, _ABSENT)
        if value is _ABSENT:
            for values in chain:
                if key in values:
                    value = values[key]
                    break
            else:
                return _missing(key, default)
        if type(value) is not type(default) and default is not MISSING:
            value = convert(key, value, default)
        if RECORDING[0]:
            note(key, value, False)
        return value

    return read


def _current_reader(key: str) -> Callable[..., Any]:
    """Return the function that reads ``key`` in the current scope: ``param_scope.key()``."""

    def read(default: Any = MISSING) -> Any:
        current = get_current()
        if current is ROOT:
            current = pin()
        for values in current._chain:
            if key in values:
                value = values[key]
                break
        else:
            return _missing(key, default)
        if type(value) is not type(default) and default is not MISSING:
            value = convert(key, value, default)
        if RECORDING[0]:
            note(key, value, False)
        return value

    return read


def _child(name: str) -> property:
    """Return the property of a name ``functools.partial`` defines: here it is a key too."""
    return property(lambda self: self[name], doc=f"The accessor of the key under this one: {name}.")


class Accessor(functools.partial[Any]):
    """A dotted key, bound to one scope or (class-level access) to whichever scope is current.

    Obtained as ``ps.train`` or ``param_scope.train``; it can be held in a variable and read
    many times (``p = ps.train; p.lr(); p.epochs()``). ``p.lr(default)`` and ``p.lr | default``
    read the key, ``p.lr = value`` writes it.

    Examples:
        >>> from assay_scope import param_scope
        >>> ps = param_scope(**{"train.lr": 0.1})
        >>> p = ps.train
        >>> p.lr(), p.epochs(10), p.epochs | 20
        (0.1, 10, 20)

    """

    # A call (``ps.lr()``, ``ps.lr(0.1)``) is functools.partial's, written in C, which calls
    # a function closed over the key and the chain: the quickest way into a read. Everything
    # else lives in the instance dict (a partial has one); ``_kc`` is (key, the bound scope's
    # chain), read by ``|`` in a single attribute load (each load of an attribute of a class
    # with __getattr__ is a full look-up). The chain of a scope is fixed once built.
    __slots__ = ()

    _kc: tuple[str, tuple[dict[str, Any], ...]]
    _key: str
    _kids: dict[str, Accessor] | None
    _scope: Any  # None for class-level access: the current scope at each read

    # The attributes of functools.partial are parameter names like any other here.
    func = _child("func")
    args = _child("args")
    keywords = _child("keywords")

    def __new__(cls, scope: Any, key: str) -> Accessor:
        return bound_accessor(scope, key, cls)

    def __or__(self, default: Any) -> Any:
        """``ps.lr | 0.1`` is ``ps.lr(0.1)``."""
        key, chain = self._kc
        value = chain[0].get(key, _ABSENT)
        if value is _ABSENT:
            for values in chain:
                if key in values:
                    value = values[key]
                    break
            else:
                return _missing(key, default)
        if type(value) is not type(default):
            value = convert(key, value, default)
        if RECORDING[0]:
            note(key, value, False)
        return value

    def get_or_else(self, default: Any = None) -> Any:
        """Return the value or ``default``, the reference's spelling of ``accessor(default)``."""
        return self(default)

    def __bool__(self) -> bool:
        """Return False when the key is missing, else the truth of its value."""
        if self._scope is None:
            current = get_current()
            chain = (pin() if current is ROOT else current)._chain
        else:
            chain = self._kc[1]
        for values in chain:
            if self._key in values:
                return bool(values[self._key])
        return False

    def __getattr__(self, name: str) -> Accessor:
        if name.startswith("_"):
            # Keeps tools that probe for __array__, _repr_html_ and the like working.
            raise AttributeError(
                f"{name!r}: a name starting with '_' is not read as a parameter in attribute "
                f"syntax; read the key as accessor[{name!r}]"
            )
        # Kept in the instance dict too: the next ``accessor.name`` is a plain attribute hit.
        child = self.__dict__[name] = self[name]
        return child

    def __getitem__(self, name: str) -> Accessor:
        kids = self._kids
        if kids is None:
            kids = self.__dict__["_kids"] = {}
        child = kids.get(name)
        if child is None:
            scope = self._scope
            key = join(self._key, name)
            child = kids[name] = (
                CurrentAccessor(None, key) if scope is None else bound_accessor(scope, key)
            )
        return child

    def __setattr__(self, name: str, value: Any) -> None:
        scope = self._scope
        if scope is None:
            scope = get_current()._writable()
        scope.put(join(self._key, name), value)

    __setitem__ = __setattr__

    def __reduce__(self) -> tuple[type[Accessor], tuple[Any, str]]:
        # Rebuilt through __new__: functools.partial's own reduce would carry the reading
        # function, which closes over a chain. A class-level accessor (scope None) reads the
        # current scope of the process it is unpickled in; a bound one carries its scope.
        return (type(self), (self._scope, self._key))

    def __repr__(self) -> str:
        where = "the current param_scope" if self._scope is None else repr(self._scope)
        return f"<{self._key} in {where}>"


class CurrentAccessor(Accessor):
    """An accessor of class-level access (``param_scope.train.lr``): reads the current scope."""

    __slots__ = ()

    def __new__(cls, scope: Any, key: str) -> CurrentAccessor:
        accessor: CurrentAccessor = _fill(_new(cls, _current_reader(key)), None, key, None)
        return accessor

    def __or__(self, default: Any) -> Any:
        """``param_scope.lr | 0.1`` is ``param_scope.lr(0.1)``."""
        key = self._key
        current = get_current()
        if current is ROOT:
            current = pin()
        for values in current._chain:
            if key in values:
                value = values[key]
                break
        else:
            return _missing(key, default)
        if type(value) is not type(default):
            value = convert(key, value, default)
        if RECORDING[0]:
            note(key, value, False)
        return value


_new = functools.partial.__new__


def _fill(accessor: Any, scope: Any, key: str, chain: Any) -> Any:
    """Set an accessor's state in its instance dict (its __setattr__ writes parameters)."""
    state = accessor.__dict__
    state["_kc"] = (key, chain)
    state["_key"] = key
    state["_scope"] = scope
    state["_kids"] = None
    return accessor


def bound_accessor(scope: Any, key: str, cls: type[Accessor] = Accessor) -> Accessor:
    """Return a new accessor of ``key`` bound to ``scope`` (``Accessor(scope, key)``, quicker)."""
    chain = scope._chain
    accessor: Accessor = _fill(_new(cls, _bound_reader(key, chain)), scope, key, chain)
    return accessor


def _missing(key: str, default: Any) -> Any:
    """Return the default of a read that found no value, or raise if there is none."""
    if default is MISSING:
        raise MissingParameterError(key)
    if RECORDING[0]:
        note(key, default, True)
    return default
