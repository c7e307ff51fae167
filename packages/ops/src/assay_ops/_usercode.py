"""Library or user code: where a code fingerprint's walk stops.

Library code stops the walk (its package versions are in the run's provenance): the standard
library, anything installed in ``site-packages`` or ``dist-packages``, builtins and extension
modules without source, and assay's own packages. Everything else is the user's code: a
script, a notebook, a project checkout, a test module.
"""

from __future__ import annotations

import functools
import os
import sys
import types

# assay's own packages: library code, whatever their install (an editable checkout included).
_ASSAY_PACKAGES = frozenset(
    {"assay", "assay_scope", "assay_context", "assay_ops", "assay_steps", "assay_backends"}
)
_USER: dict[str, bool] = {}
_STDLIB_NAMES: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ()))


@functools.lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    """Return the folders of the standard library (as given and resolved).

    The folder of ``os.py`` is the standard library's (its extension modules, in
    ``lib-dynload`` or ``DLLs``, are library code by their suffix anyway).
    """
    found = {os.path.dirname(os.__file__)}
    found.update([os.path.realpath(p) for p in found])
    return tuple(sorted(os.path.normcase(p) + os.sep for p in found))


def _library_file(file: str) -> bool:
    path = os.path.normcase(os.path.abspath(file))
    if path.endswith((".so", ".pyd", ".dll", ".dylib")):
        return True  # an extension module: no source to hash
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return path.startswith(_library_dirs())


def _file_of(module: object) -> object:
    """Return the file of ``module``, or the first folder of a namespace package."""
    file = getattr(module, "__file__", None)
    if not file and module is not None:
        path = getattr(module, "__path__", None)
        file = next(iter(path), None) if path is not None else None
    return file


def is_user_module(module: types.ModuleType | str | None) -> bool:
    """Return whether ``module`` (a module or its name) is the user's own code.

    Library code is the standard library, anything installed in ``site-packages`` or
    ``dist-packages``, builtins and extension modules, and assay's own packages; everything
    else (a script, ``__main__``, a project checkout, a test module) is the user's. The answer
    is memoised per module name. ``None`` (code executed without a module) is the user's.

    Examples:
        >>> is_user_module("json"), is_user_module("assay_ops"), is_user_module("my_lab.models")
        (False, False, True)

    """
    if module is None:
        return True
    name = module if isinstance(module, str) else module.__name__
    known = _USER.get(name)
    if known is not None:
        return known
    top = name.partition(".")[0]
    loaded = sys.modules.get(name) if isinstance(module, str) else module
    file = _file_of(loaded)
    if top in _ASSAY_PACKAGES or top == "builtins" or top in sys.builtin_module_names:
        user = False
    elif isinstance(file, str) and file:
        user = not _library_file(file)
    else:  # no file: a builtin or frozen module, interactive __main__, code made at run time
        user = top not in _STDLIB_NAMES
    if loaded is not None:  # a name not imported yet is decided again once it is
        _USER[name] = user
    return user
