"""How a walk resolves what code refers to: global names, imports, module attributes, values.

A name a body loads is resolved through the function's globals (then its builtins), an import
in a body through ``sys.modules`` (imported if needed), and attributes read from the user's
modules one by one. What a name ends at is followed as code (a function or class of the user's
code), counted as a constant (simple immutable data, by value) or listed as data whose value is
not fingerprinted; dynamic functions (``eval``, ``getattr``, ``importlib.import_module``...)
are listed as what cannot be followed.
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

from ._hashing import constant
from ._objects import MISSING, instance_dict
from ._usercode import is_user_module
from ._walkstate import WalkState

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


class WalkRefs(WalkState):
    """The part of a walk that resolves references and takes in the values they end at."""

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
