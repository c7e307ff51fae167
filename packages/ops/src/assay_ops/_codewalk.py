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
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.util
import sys
import types
from collections.abc import Mapping
from typing import Any

from ._bytecode import Ref, scan
from ._coverage import FunctionPrint, Unresolved
from ._hashing import constant, digest
from ._objects import (
    MISSING,
    function_module,
    instance_dict,
    key_of,
    members,
    qualname_of,
    same_file,
    unwrap_root,
)
from ._prints import class_print, function_print
from ._usercode import is_user_module

_DYNAMIC_REASON = "dynamic: what it reaches is not followed"
_DYNAMIC_IDS: frozenset[int] = frozenset(
    id(f)
    for f in (
        builtins.eval,
        builtins.exec,
        builtins.getattr,
        builtins.globals,
        builtins.__import__,
        importlib.import_module,
    )
)
_DYNAMIC_MODULES = frozenset({"builtins", "importlib"})
_CODE_TYPES = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)
# values followed as code (as is any object with a __wrapped__ attribute)
_CODE_VALUES = (
    type,
    types.FunctionType,
    types.MethodType,
    staticmethod,
    classmethod,
    functools.partial,
)

_CONTAINERS = (tuple, list, dict, set, frozenset)


class Walk:
    """One computation of a fingerprint: what it reached, and what it depended on."""

    def __init__(self) -> None:
        self.prints: dict[str, FunctionPrint] = {}
        self.short: dict[str, str] = {}  # key -> name in the digest (no module)
        self.constants: dict[str, tuple[str, str]] = {}  # key -> (name in digest, value)
        self.origins: dict[str, tuple[int, str, str]] = {}  # constant key -> (ns, name, where)
        self.unresolved: set[Unresolved] = set()
        self.keys: dict[int, str] = {}
        self.keep: list[Any] = []  # keeps ids unique while the walk runs
        self.todo: list[tuple[Any, str, bool]] = []
        # what must still hold for the result to be served again: (owner of the namespace,
        # namespace, name, value); the functions whose code and defaults must stay; (function,
        # closure index, value)
        self.names: dict[tuple[int, str], tuple[Any, Mapping[str, Any], str, Any]] = {}
        self.functions: list[types.FunctionType] = []  # whose code, defaults must stay
        self.cells: list[tuple[types.FunctionType, int, Any]] = []
        self.state: set[tuple[int, str]] = set()
        self.checked: set[str] = set()  # files compared with the disk by this walk
        self.roots: list[str] = []

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

    # ------------------------------------------------------------ bookkeeping

    def _report(self, where: str, name: str, reason: str) -> None:
        self.unresolved.add(Unresolved(where, name, reason))

    def _check(self, owner: Any, namespace: Mapping[str, Any], name: str, value: Any) -> None:
        """Remember that ``namespace[name]`` is ``value``.

        ``owner`` is the function or module whose namespace it is (None for builtins and
        ``sys.modules``): the memo reaches the namespace through it, without holding it.
        """
        self.names[(id(namespace), name)] = (owner, namespace, name, value)

    def _add(self, value: Any, root: bool = False) -> str:
        """Take in a function or class of the user's code (once); return its key."""
        known = self.keys.get(id(value))
        if known is not None:
            return known
        key = base = key_of(value)
        count = 1
        while key in self.short:  # another object of the same name (e.g. a factory's closures)
            count += 1
            key = f"{base}#{count}"
        self.short[key] = (
            value.__qualname__
            if isinstance(value, type)
            else qualname_of(value)
            if isinstance(value, types.FunctionType)
            else key
        )
        self.keys[id(value)] = key
        self.keep.append(value)
        self.todo.append((value, key, root))
        return key

    def _add_library(self, target: Any) -> str:
        """Take in a root in library code, which counts by its name; return its key."""
        key = self.keys.get(id(target)) or key_of(target)
        self.keys[id(target)] = key
        self.keep.append(target)
        code = getattr(target, "__code__", None)
        self.short[key] = key
        self.prints[key] = FunctionPrint(
            digest("name", [key]),
            getattr(code, "co_filename", ""),
            getattr(code, "co_firstlineno", 0),
            "name",
        )
        return key

    def _reach(self, value: Any, where: str, written: str, depth: int = 0) -> None:
        """Follow ``value``, a function or class (or a wrapper of one) that code refers to."""
        for _ in range(100):
            if isinstance(value, (staticmethod, classmethod, types.MethodType)):
                value = value.__func__
            elif isinstance(value, functools.partial):
                value = value.func
            else:
                break
        if isinstance(value, type):
            if is_user_module(value.__module__):
                self._add(value)
            return
        if isinstance(value, types.FunctionType) and is_user_module(function_module(value)):
            self._add(value)
        wrapped = instance_dict(value).get("__wrapped__")
        if wrapped is not None and wrapped is not value and depth < 100:
            self._reach(wrapped, where, written, depth + 1)

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

    # ------------------------------------------------------------ references

    def _global_ref(
        self,
        owner: Any,
        namespace: Mapping[str, Any],
        builtin_names: Mapping[str, Any],
        name: str,
        chain: tuple[str, ...],
        where: str,
    ) -> None:
        """Resolve a global name (and the attributes read from it) that code loads."""
        value = namespace.get(name, MISSING)
        self._check(owner, namespace, name, value)
        if value is MISSING:
            value = builtin_names.get(name, MISSING)
            self._check(None, builtin_names, name, value)
            if value is MISSING:
                self._report(where, name, "undefined: not a local, global or builtin name")
            elif id(value) in _DYNAMIC_IDS:
                self._report(where, name, _DYNAMIC_REASON)
            return
        module = namespace.get("__name__")
        self._follow(value, name, chain, where, f"{module}.{name}", name, namespace)

    def _import_ref(
        self,
        namespace: Mapping[str, Any],
        level: int,
        module: str,
        path: tuple[str, ...] | None,
        where: str,
    ) -> None:
        """Resolve an import in a body (and the names or attributes taken from it)."""
        written = f"{'.' * level}{module}"
        try:
            absolute, found = _import(namespace, written, level, module)
        except Exception as err:  # whatever importing raises is the user's module's error
            if path == ():
                self._report(
                    where, f"import {written}", f"import failed ({type(err).__name__}: {err})"
                )
            return
        self._check(None, sys.modules, absolute, found)
        if path is None:
            if is_user_module(found):
                self._report(
                    where,
                    written,
                    "a module imported in the body and used as a value: what it reaches is "
                    "not followed",
                )
            return
        if path:  # (a submodule it names is followed through the attributes read from it)
            self._follow(found, module, path, where, "", "", None, modules_are_values=False)

    def _follow(
        self,
        value: Any,
        written: str,
        chain: tuple[str, ...],
        where: str,
        key: str,
        short: str,
        namespace: Mapping[str, Any] | None,
        modules_are_values: bool = True,
    ) -> None:
        """Resolve ``value.chain`` through modules, then take in what it ends at."""
        while isinstance(value, types.ModuleType):
            if not chain:
                if modules_are_values and is_user_module(value):
                    self._report(
                        where,
                        written,
                        "a module of your code used as a value: what it reaches is not followed",
                    )
                return
            attribute, chain = chain[0], chain[1:]
            written = f"{written}.{attribute}"
            if not is_user_module(value):
                self._library_attribute(value, attribute, where, written)
                return
            found = self._module_attribute(value, attribute, modules_are_values)
            if found is MISSING:
                self._report(where, written, f"module {value.__name__} has no such attribute")
                return
            key, short, namespace = f"{value.__name__}.{attribute}", attribute, vars(value)
            value = found
        self._value(value, where, written, key, short, "global", namespace)

    def _library_attribute(
        self, module: types.ModuleType, attribute: str, where: str, written: str
    ) -> None:
        """List a dynamic function read from a library module (which stops the walk)."""
        if module.__name__ in _DYNAMIC_MODULES:
            found = getattr(module, attribute, None)
            if id(found) in _DYNAMIC_IDS:
                self._report(where, written, _DYNAMIC_REASON)

    def _module_attribute(
        self, module: types.ModuleType, attribute: str, modules_are_values: bool
    ) -> Any:
        """Return ``module.attribute`` of the user's module, or MISSING when it has none."""
        names = vars(module)
        found = names.get(attribute, MISSING)
        self._check(module, names, attribute, found)
        if found is MISSING:
            found = sys.modules.get(f"{module.__name__}.{attribute}", MISSING)
        if found is MISSING and not modules_are_values and hasattr(module, "__path__"):
            found = _submodule(module, attribute)  # `from package import submodule` imports it
        if found is MISSING and "__getattr__" in names:
            found = _dynamic_attribute(module, attribute)
        return found

    # ------------------------------------------------------------ values

    def _value(
        self,
        value: Any,
        where: str,
        written: str,
        key: str,
        short: str | None,
        kind: str,
        namespace: Mapping[str, Any] | None = None,
    ) -> None:
        """Take in a value code reads: follow code, count a constant, list data."""
        if id(value) in _DYNAMIC_IDS:
            self._report(where, written, _DYNAMIC_REASON)
            return
        text = constant(value)
        if text is not None:
            self.constants[key] = (short or key.rpartition(".")[2], text)
            if namespace is not None:
                self.origins[key] = (id(namespace), short or "", where)
        elif isinstance(value, _CODE_VALUES) or "__wrapped__" in instance_dict(value):
            self._reach(value, where, written)
        elif not isinstance(value, (types.ModuleType, *_CODE_TYPES)):
            self._data(value, where, written, kind)

    def _data(self, value: Any, where: str, written: str, kind: str) -> None:
        """List data that code reads (its value is not fingerprinted); follow code it holds."""
        kind_of = type(value)
        if is_user_module(kind_of.__module__):
            self._report(
                where,
                written,
                f"{kind} ({kind_of.__qualname__}): its value is not fingerprinted (its class is "
                "followed)",
            )
            self._reach(kind_of, where, written)
            return
        if (
            kind_of in _CONTAINERS
            and len(value) <= 10_000
            and self._table(value, where, written, kind)
        ):
            return
        # a library's function-like object (a ufunc, a jit dispatcher) is code
        if not _named_callable(value):
            self._report(
                where, written, f"{kind} ({kind_of.__qualname__}): its value is not fingerprinted"
            )

    def _table(self, value: Any, where: str, written: str, kind: str) -> bool:
        """Follow the functions and classes a container holds; return whether it held any.

        A dispatch table: the code it holds is followed, the rest is data.
        """
        items = [*value, *value.values()] if type(value) is dict else list(value)
        held = [item for item in items if isinstance(item, (type, types.FunctionType))]
        for item in held:
            self._reach(item, where, written)
        if held:
            self._report(
                where,
                written,
                f"{kind} ({type(value).__qualname__}): its value is not fingerprinted (the "
                "functions and classes in it are followed)",
            )
        return bool(held)

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


def _import(
    namespace: Mapping[str, Any], written: str, level: int, module: str
) -> tuple[str, types.ModuleType]:
    """Return the absolute name and the module of an import in a body, imported if needed."""
    absolute = module
    if level:
        package = namespace.get("__package__") or str(namespace.get("__name__", ""))
        absolute = importlib.util.resolve_name(written, package)
    found = sys.modules.get(absolute)
    if found is None:
        found = importlib.import_module(absolute)
    return absolute, found


def _submodule(module: types.ModuleType, attribute: str) -> Any:
    try:
        return importlib.import_module(f"{module.__name__}.{attribute}")
    except Exception:
        return MISSING


def _dynamic_attribute(module: types.ModuleType, attribute: str) -> Any:
    """Return ``module.attribute`` through the module's ``__getattr__``, or MISSING."""
    try:
        return getattr(module, attribute)
    except Exception:
        return MISSING


def _named_callable(value: Any) -> bool:
    """Whether ``value`` is callable and has a name (a function-like object of a library)."""
    try:
        return callable(value) and isinstance(getattr(value, "__name__", None), str)
    except Exception:
        return False
