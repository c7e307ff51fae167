"""The transitive walk: from the roots, every function, method and class of the user's code.

The walk takes in each root (a function, method or class) and every function, method and class
of the user's own code that the roots reach, followed transitively and through cycles:

- names a body loads, resolved through the function's globals (module globals, imported
  names), and attributes of imported modules (``helpers.scale(x)``, ``pkg.sub.f``);
- names imported inside a body (``from mypkg.helpers import f`` in a function);
- the class a method belongs to, and base classes: a class is hashed whole (all its methods
  and class attributes), so methods reached through ``self`` or ``cls`` are covered, and the
  names its methods and class body reference are followed too;
- functions and classes held by closure cells, given as default argument values, used as
  decorators of a helper or held in a module-level table (a dict of functions);
- module-level constants the code reads (``FACTOR = 3``): simple immutable data (None, bool,
  int, float, complex, str, bytes, and tuples and frozensets of those) counts by value.

Library code stops the walk (see ``_usercode``).

What cannot be followed statically is listed as [`Unresolved`][assay_ops.Unresolved], never
silently ignored: undefined names, missing attributes of the user's modules, ``eval``,
``exec``, ``getattr``, ``globals``, ``__import__`` and ``importlib.import_module``, imports that
fail, global data that is not a constant (a dict, a list, an array, an object), and code whose
source cannot be found (its bytecode is hashed instead).

The walk also records what it depended on (the names it resolved, the functions whose code
and defaults it read, the closure cells), so that its result can be served again while all of
that still holds (see ``_freshness``).

A walk is built in layers: ``_walkstate`` holds what it reached and depended on, ``_walkrefs``
resolves the names, imports and values code refers to, and ``Walk`` here visits functions and
classes.
"""

from __future__ import annotations

import builtins
import sys
import types
from collections.abc import Mapping
from typing import Any

from ._bytecode import Ref, scan
from ._coverage import FunctionPrint
from ._hashing import digest
from ._objects import (
    MISSING,
    function_module,
    instance_dict,
    members,
    qualname_of,
    same_file,
    unwrap_root,
)
from ._prints import class_print, function_print
from ._usercode import is_user_module
from ._walkrefs import WalkRefs


class Walk(WalkRefs):
    """One computation of a fingerprint: what it reached, and what it depended on."""

    # ------------------------------------------------------------ roots and the loop

    def add_root(self, value: Any) -> None:
        """Take in a root: the user's code is walked, library code counts by its name."""
        target = unwrap_root(value)
        key = self._add(target, root=True) if _is_user_code(target) else self._add_library(target)
        if key not in self.roots:
            self.roots.append(key)

    def run(self) -> None:
        """Visit everything taken in, and what it reaches, until nothing is left."""
        while self.todo:
            value, key, root = self.todo.pop()
            try:
                if isinstance(value, type):
                    self._visit_class(value, key)
                else:
                    self._visit_function(value, key, root)
            except Exception as err:  # an object no rule foresaw: said, never fatal
                self._report(key, key, f"not followed ({type(err).__name__}: {err})")
                self.prints.setdefault(key, FunctionPrint(digest("name", [key]), "", 0, "name"))

    def retract_global_state(self) -> None:
        """Drop the constants that code assigns with ``global``: they are state, listed so."""
        for key, (namespace, name, where) in list(self.origins.items()):
            if (namespace, name) in self.state:  # assigned with `global`: state, not a constant
                del self.constants[key]
                self.names.pop((namespace, name), None)
                self._report(
                    where, name, "global state (assigned with `global`): not fingerprinted"
                )

    # ------------------------------------------------------------ functions

    def _visit_function(self, func: types.FunctionType, key: str, root: bool) -> None:
        print_, reason, refs = function_print(func, root, self.checked)
        self.prints[key] = print_
        if reason:
            self._report(key, qualname_of(func), reason)
        self._scan_function(func, key)
        if refs:
            builtin_names = vars(builtins)
            for ref in refs:
                self._global_ref(func, func.__globals__, builtin_names, ref[1], ref[2], key)
        owner = self._owner(func)
        if owner is not None:
            self._reach(owner, key, owner.__qualname__)

    def _owner(self, func: types.FunctionType) -> type | None:
        """Return the class a method is defined in (its code is part of the method's context)."""
        parts = qualname_of(func).split(".")
        if len(parts) < 2 or "<locals>" in parts:
            return None
        # through the namespace the method was defined in (not sys.modules, which a reload
        # may have given another module object)
        target: Any = func.__globals__.get(parts[0], MISSING)
        self._check(func, func.__globals__, parts[0], target)
        for part in parts[1:-1]:
            target = vars(target).get(part) if isinstance(target, type) else None
        return target if isinstance(target, type) else None

    def _scan_function(self, func: types.FunctionType, where: str) -> None:
        """Follow what the code of ``func`` refers to: globals, imports, cells, defaults."""
        self.functions.append(func)
        refs, stores = scan(func.__code__)
        namespace = func.__globals__
        builtin_names = _builtin_names(func)
        self.state.update((id(namespace), name) for name in stores)
        for ref in refs:
            if ref[0] == "g":
                self._global_ref(func, namespace, builtin_names, ref[1], ref[2], where)
            else:
                self._import_ref(namespace, ref[1], ref[2], ref[3], where)
        self._closure(func, where)
        self._defaults(func, where)

    def _closure(self, func: types.FunctionType, where: str) -> None:
        """Take in the values of the closure cells of ``func`` (the memo checks they stay)."""
        cells = zip(func.__code__.co_freevars, func.__closure__ or (), strict=False)
        for index, (var, cell) in enumerate(cells):
            try:
                value = cell.cell_contents
            except ValueError:  # not assigned yet
                continue
            self.cells.append((func, index, value))
            self._value(value, where, var, f"{where}.<closure>.{var}", None, "closure value")

    def _defaults(self, func: types.FunctionType, where: str) -> None:
        """Follow the functions and classes given as default argument values of ``func``."""
        for value in (*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()):
            if isinstance(value, (type, types.FunctionType)) or instance_dict(value).get(
                "__wrapped__"
            ):
                self._reach(value, where, getattr(value, "__qualname__", repr(value)))

    # ------------------------------------------------------------ classes

    def _visit_class(self, cls: type, key: str) -> None:
        print_, reason, refs, file = class_print(cls, self.checked)
        self.prints[key] = print_
        if reason:
            self._report(key, cls.__qualname__, reason)
        for base in cls.__bases__:
            self._reach(base, key, base.__qualname__)
        if type(cls) is not type:
            self._reach(type(cls), key, type(cls).__qualname__)
        self._class_refs(cls, refs, key)
        self._class_members(cls, key, file)

    def _class_refs(self, cls: type, refs: tuple[Ref, ...], key: str) -> None:
        """Resolve the names the class statement loads (not the class's own) in its module."""
        module = sys.modules.get(cls.__module__)
        namespace: Mapping[str, Any] = vars(module) if module is not None else {}
        own = vars(cls)
        for ref in refs:
            if ref[1] not in own:
                self._global_ref(module, namespace, vars(builtins), ref[1], ref[2], key)

    def _class_members(self, cls: type, key: str, file: str) -> None:
        """Follow the classes and functions the class holds, and scan its own methods."""
        prefix = cls.__qualname__ + "."
        for name, member in list(vars(cls).items()):
            if isinstance(member, type):
                self._reach(member, key, name)
                continue
            for func in members(member):
                if not (
                    qualname_of(func).startswith(prefix) or func.__qualname__.startswith(prefix)
                ):
                    self._reach(func, key, name)  # a function defined elsewhere, bound here
                elif same_file(func.__code__.co_filename, file):
                    self._scan_function(func, f"{key}.{name}")
                # else: generated from the class's definition (dataclass, attrs): covered by it


def _is_user_code(target: Any) -> bool:
    """Whether a root (a class, a function or another routine) is the user's code."""
    if isinstance(target, type):
        return is_user_module(target.__module__)
    if isinstance(target, types.FunctionType):
        return is_user_module(function_module(target))
    return False


def _builtin_names(func: types.FunctionType) -> Mapping[str, Any]:
    """Return the builtins ``func`` sees (its ``__builtins__``: a dict or a module)."""
    names: Any = func.__builtins__ if hasattr(func, "__builtins__") else vars(builtins)
    return names if isinstance(names, dict) else vars(names)
