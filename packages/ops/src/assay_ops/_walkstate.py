"""The state of a walk over the user's code, and how it takes in what it reaches.

A walk (see ``_codewalk``) keeps what it reached (each function's and class's print, the
constants it read, what it could not follow) and what it depended on (the names it resolved,
the functions whose code and defaults it read, the closure cells), so that its result can be
served again while all of that still holds (see ``_freshness``).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from typing import Any

from ._coverage import FunctionPrint, Unresolved
from ._hashing import digest
from ._objects import function_module, instance_dict, key_of, qualname_of
from ._usercode import is_user_module


class WalkState:
    """What one walk reached and depended on, and the bookkeeping of taking things in."""

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
