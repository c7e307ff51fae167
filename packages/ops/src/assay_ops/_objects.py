"""Reading the functions and classes that code refers to, as a code fingerprint needs them.

What a class attribute holds, what a wrapper wraps, which module defines a function, and the
name a fingerprint lists a function or class under.
"""

from __future__ import annotations

import functools
import inspect
import os
import types
from typing import Any

MISSING: Any = object()  # a name that binds nothing


def members(value: Any) -> list[types.FunctionType]:
    """Return the functions a class attribute holds (methods, properties, static methods)."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return [
            f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)
        ]
    if isinstance(value, functools.cached_property):
        value = value.func
    return [value] if isinstance(value, types.FunctionType) else []


def instance_dict(value: Any) -> dict[str, Any]:
    """Return the ``__dict__`` of ``value`` without running its class's attribute hooks."""
    try:
        found = object.__getattribute__(value, "__dict__")
    except Exception:  # no __dict__, or a property that fails
        return {}
    return found if isinstance(found, dict) else {}


def same_file(first: str, second: str) -> bool:
    """Whether two code file names name the same file."""
    return first == second or (
        not first.startswith("<") and os.path.abspath(first) == os.path.abspath(second)
    )


def function_module(func: types.FunctionType) -> str | None:
    """Return the module that defines ``func`` (functools.wraps copies ``__module__``)."""
    name = func.__globals__.get("__name__")
    return name if isinstance(name, str) else None


def qualname_of(func: types.FunctionType) -> str:
    """Return the qualified name of ``func``'s code (functools.wraps copies ``__qualname__``)."""
    return str(getattr(func.__code__, "co_qualname", func.__qualname__))


def key_of(value: Any) -> str:
    """Return the name a fingerprint lists ``value`` under: ``"module.qualname"``."""
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, types.FunctionType):
        return f"{function_module(value) or '<unknown>'}.{qualname_of(value)}"
    module = getattr(value, "__module__", None) or "builtins"
    return f"{module}.{getattr(value, '__qualname__', getattr(value, '__name__', repr(value)))}"


def unwrap_root(value: Any) -> Any:
    """Return the function, class or routine behind a root; TypeError for anything else."""
    target = value
    for _ in range(100):
        if isinstance(target, (staticmethod, classmethod, types.MethodType)):
            target = target.__func__
        elif isinstance(target, functools.partial):
            target = target.func
        elif not isinstance(target, type) and "__wrapped__" in instance_dict(target):
            target = instance_dict(target)["__wrapped__"]
        else:
            break
    if isinstance(target, (type, types.FunctionType)) or inspect.isroutine(target):
        return target
    raise TypeError(
        f"fingerprint: root {value!r} of type {type(value).__qualname__}: expected a function, "
        "method or class (or an object wrapping one, such as an @operation)"
    )
