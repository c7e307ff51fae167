"""Whether a computed fingerprint still holds, checked without keeping the user's code alive.

A fingerprint is served again while its roots are the same objects and everything its walk
depended on still holds: every name it resolved binds the same object, the functions it read
keep their code and default values, and the closure cells it read hold the same values. A
helper redefined in a notebook, a module reloaded, code swapped in place or a constant
reassigned gives a new fingerprint.

Nothing here keeps the user's functions or classes alive: roots and resolved values are
referenced weakly (or by id), namespaces through the function or module that owns them.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._codewalk import Walk
from ._hashing import TAGS, constant
from ._objects import MISSING


class _Id(int):
    """An object recognised by its id: it cannot be referenced weakly, nor held (data)."""

    __slots__ = ()


def _pin(value: Any) -> Any:
    """Return a token that recognises ``value`` again without keeping the user's code alive.

    Constants are held (they reference nothing); functions, classes, modules and code
    objects are referenced weakly; other data (a dict, a list) is recognised by its id.
    """
    kind = type(value)
    if value is MISSING or kind in TAGS:
        return value
    if (kind is tuple or kind is frozenset) and constant(value) is not None:
        return value
    try:
        return weakref.ref(value)
    except TypeError:
        return _Id(id(value))


def _same(pin: Any, value: Any) -> bool:
    kind = type(pin)
    if kind is weakref.ref:
        target = pin()
        return target is not None and target is value
    if kind is _Id:
        return bool(pin == id(value))
    return pin is value


def _owner_pin(owner: Any, namespace: Mapping[str, Any]) -> Any:
    if isinstance(owner, (types.FunctionType, types.ModuleType)):
        return weakref.ref(owner)
    return namespace  # builtins, sys.modules: process-wide, held


_WEAK = 0  # kinds of pins: a weak reference, an id, the object itself
_ID = 1
_HELD = 2


def _kind(pin: Any) -> int:
    return _WEAK if type(pin) is weakref.ref else _ID if type(pin) is _Id else _HELD


# A namespace's pinned names: ((name, pin kind, pin), ...)
_Entries = tuple[tuple[str, int, Any], ...]


@dataclass
class Freshness:
    """What must still hold for a computed fingerprint to be served again."""

    roots: tuple[Any, ...]
    names: list[tuple[Any, _Entries]]  # (owner or namespace, entries), one per namespace
    functions: list[tuple[Any, Any, Any, Any]]  # (function, code, defaults, kwdefaults)
    cells: list[tuple[Any, int, Any]]  # (function, closure index, value)

    @classmethod
    def of(cls, roots: tuple[Any, ...], walk: Walk) -> Freshness:
        """Pin the roots and what ``walk`` depended on."""
        groups: dict[int, tuple[Any, list[tuple[str, int, Any]]]] = {}
        for owner, namespace, name, value in walk.names.values():
            group = groups.setdefault(id(namespace), (_owner_pin(owner, namespace), []))
            pin = _pin(value)
            group[1].append((name, _kind(pin), pin))
        return cls(
            tuple(_pin(root) for root in roots),
            [(holder, tuple(entries)) for holder, entries in groups.values()],
            [
                (
                    weakref.ref(f),
                    weakref.ref(f.__code__),
                    _pin(f.__defaults__),
                    _pin(f.__kwdefaults__),
                )
                for f in dict.fromkeys(walk.functions)
            ],
            [(weakref.ref(f), index, _pin(value)) for f, index, value in walk.cells],
        )

    def fresh(self, roots: tuple[Any, ...]) -> bool:
        """Whether the roots are the same and every name resolved still binds the same object."""
        for pin, root in zip(self.roots, roots, strict=True):
            if not _same(pin, root):
                return False
        return self._names_hold() and self._functions_hold() and self._cells_hold()

    def _names_hold(self) -> bool:
        for holder, entries in self.names:
            namespace = holder
            if type(holder) is weakref.ref:
                owner = holder()
                if owner is None:
                    return False
                namespace = owner.__globals__ if type(owner) is types.FunctionType else vars(owner)
            if not _entries_hold(namespace, entries):
                return False
        return True

    def _functions_hold(self) -> bool:
        for function, code, defaults, kwdefaults in self.functions:
            owner = function()
            if owner is None or code() is not owner.__code__:
                return False  # gone, or its code swapped in place (a reload tool)
            now, kw_now = owner.__defaults__, owner.__kwdefaults__
            if (defaults is not now and not _same(defaults, now)) or (
                kwdefaults is not kw_now and not _same(kwdefaults, kw_now)
            ):
                return False
        return True

    def _cells_hold(self) -> bool:
        for function, index, value in self.cells:
            owner = function()
            try:
                if owner is None or not _same(value, owner.__closure__[index].cell_contents):
                    return False
            except (ValueError, TypeError, IndexError):
                return False
        return True


def _entries_hold(namespace: Mapping[str, Any], entries: _Entries) -> bool:
    """Whether every pinned name of ``namespace`` still binds the object it bound."""
    get = namespace.get
    for name, kind, pin in entries:
        current = get(name, MISSING)
        if kind == _HELD:
            if pin is not current:
                return False
        elif kind == _WEAK:
            target = pin()
            if target is None or target is not current:
                return False
        elif pin != id(current):
            return False
    return True
