"""Accessors: the objects behind ``ps.train.lr``, which read, default, convert and write a key."""

from __future__ import annotations

from typing import Any

from ._convert import convert
from ._errors import MissingParameterError
from ._state import RECORDING, get_current, note

_set = object.__setattr__


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


class Accessor:
    """A dotted key, bound to one scope or (class-level access) to whichever scope is current.

    Obtained as ``ps.train`` or ``param_scope.train``; it can be held in a variable and read
    many times (``p = ps.train; p.lr(); p.epochs()``).

    Example:
        >>> from assay_scope import param_scope
        >>> ps = param_scope(**{"train.lr": 0.1})
        >>> p = ps.train
        >>> p.lr(), p.epochs(10), p.epochs | 20
        (0.1, 10, 20)

    """

    __slots__ = ("_chain", "_key", "_kids", "_scope")
    _chain: tuple[dict[str, Any], ...]  # the bound scope's chain, fixed once the scope exists
    _key: str
    _kids: dict[str, Accessor] | None
    _scope: Any  # None for class-level access: the current scope at each read

    def __init__(self, scope: Any, key: str) -> None:
        # object.__setattr__ because our own __setattr__ writes parameters.
        _set(self, "_scope", scope)
        _set(self, "_chain", None if scope is None else scope._chain)
        _set(self, "_key", key)
        _set(self, "_kids", None)

    def __call__(self, default: Any = MISSING) -> Any:
        """Return the value, or ``default`` when no scope sets the key.

        A stored value is converted to the default's type (bool, int, float, str); see
        ``convert``. Without a default, a missing key raises ``MissingParameterError``.
        """
        key = self._key
        chain = self._chain
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

    # ``ps.lr | 0.1`` is ``ps.lr(0.1)``.
    __or__ = __call__

    def get_or_else(self, default: Any = None) -> Any:
        """Return the value or ``default``, the reference's spelling of ``accessor(default)``."""
        return self(default)

    def __bool__(self) -> bool:
        """Return False when the key is missing, else the truth of its value."""
        chain = get_current()._chain if self._scope is None else self._chain
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
        return self[name]

    def __getitem__(self, name: str) -> Accessor:
        kids = self._kids
        if kids is None:
            kids = {}
            _set(self, "_kids", kids)
        child = kids.get(name)
        if child is None:
            child = kids[name] = type(self)(self._scope, join(self._key, name))
        return child

    def __setattr__(self, name: str, value: Any) -> None:
        scope = self._scope
        if scope is None:
            scope = get_current()._writable()
        scope.put(join(self._key, name), value)

    __setitem__ = __setattr__

    def __reduce__(self) -> tuple[type[Accessor], tuple[Any, str]]:
        # Rebuilt through __init__: the default slot-by-slot restore would go through
        # __setattr__, which writes parameters. A class-level accessor (scope None) reads the
        # current scope of the process it is unpickled in; a bound one carries its scope.
        return (type(self), (self._scope, self._key))

    def __repr__(self) -> str:
        where = "the current param_scope" if self._scope is None else repr(self._scope)
        return f"<{self._key} in {where}>"


class CurrentAccessor(Accessor):
    """An accessor of class-level access (``param_scope.train.lr``): reads the current scope."""

    __slots__ = ()

    def __call__(self, default: Any = MISSING) -> Any:
        """Return the value in the current scope, or ``default``; see ``Accessor.__call__``."""
        key = self._key
        for values in get_current()._chain:
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

    __or__ = __call__


def _missing(key: str, default: Any) -> Any:
    """Return the default of a read that found no value, or raise if there is none."""
    if default is MISSING:
        raise MissingParameterError(key)
    if RECORDING[0]:
        note(key, default, True)
    return default
