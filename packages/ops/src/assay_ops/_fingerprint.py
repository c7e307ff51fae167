"""Transitive code fingerprints: the code a function runs, as far as it is the user's own.

:func:`fingerprint` hashes the normalised syntax tree of each root (a function, method or
class) and of every function, method and class of the user's own code that the roots reach,
followed transitively and through cycles:

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

Library code stops the walk (its package versions are in the run's provenance): the standard
library, anything installed in ``site-packages`` or ``dist-packages``, builtins and extension
modules without source, and assay's own packages. Everything else is the user's code: a
script, a notebook, a project checkout, a test module.

What cannot be followed statically is listed in :attr:`CodeFingerprint.unresolved`, never
silently ignored: undefined names, missing attributes of the user's modules, ``eval``,
``exec``, ``getattr``, ``globals``, ``__import__`` and ``importlib.import_module``, imports that
fail, global data that is not a constant (a dict, a list, an array, an object), and code whose
source cannot be found (its bytecode is hashed instead).

Comments, docstrings, formatting, blank lines and positions do not count: a function counts by
its syntax tree, serialised without positions and docstrings (the information of
``ast.dump(node, include_attributes=False)``, written out by a faster serialiser). The layout
of syntax trees is Python's own and changes between minor versions, so a fingerprint is valid
for one Python minor version: the digest includes it, and never matches across versions.

A fingerprint is computed once per tuple of roots and process, then served from memory while
the names it resolved still bind the same objects (a helper redefined in a notebook, a module
reloaded, code swapped in place or a constant reassigned gives a new fingerprint). The memo
and the caches never keep the user's functions or classes alive.
"""

from __future__ import annotations

import ast
import builtins
import dis
import functools
import hashlib
import importlib
import importlib.util
import inspect
import linecache
import os
import sys
import threading
import types
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Part of every digest: bump it when what a fingerprint covers or how it encodes it changes.
_VERSION = "assay.fingerprint.v1"
_FORMAT = "assay-fingerprint-1"
_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
# assay's own packages: library code, whatever their install (an editable checkout included).
_ASSAY_PACKAGES = frozenset(
    {"assay", "assay_scope", "assay_context", "assay_ops", "assay_steps", "assay_backends"}
)
_MISSING: Any = object()
_LIMIT = 4096  # entries per memo before it is emptied (redefinitions in a long session)


# ---------------------------------------------------------------- results


def _shown(file: str) -> str:
    """``file`` relative to the working directory when it lies below it."""
    if not file or file.startswith("<"):
        return file
    try:
        relative = os.path.relpath(file)
    except ValueError:  # another drive
        return file
    return file if relative.startswith(os.pardir) else relative


@dataclass(frozen=True)
class FunctionPrint:
    """One function, method or class that a fingerprint covers.

    Attributes:
        digest: 16 hex digits of what was hashed (see ``basis``).
        file: The file it is defined in.
        line: The line of its ``def`` or ``class`` statement.
        basis: What was hashed: ``"source"`` (its normalised syntax tree), ``"bytecode"``
            (its source was not found) or ``"name"`` (a root in library code, which counts
            by its name only).

    Example:
        >>> FunctionPrint("0123456789abcdef", "/nowhere/models.py", 12).location
        '/nowhere/models.py:12'

    """

    digest: str
    file: str
    line: int
    basis: str = "source"

    @property
    def location(self) -> str:
        """``file:line``, the file relative to the working directory when below it."""
        return f"{_shown(self.file)}:{self.line}"


@dataclass(frozen=True, order=True)
class Unresolved:
    """A reference the fingerprint cannot follow: a change through it goes unnoticed.

    Attributes:
        where: The qualified name of the function or class holding the reference.
        name: The reference as written (``"getattr"``, ``"helpers.missing"``, ``"TABLE"``).
        reason: Why it is not followed.

    """

    where: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name}: {self.reason}"


@dataclass(frozen=True)
class CodeFingerprint:
    """What the code of some roots is, transitively: see :func:`fingerprint`.

    Attributes:
        digest: 32 hex digits over every reached function's digest (by qualified name), the
            constants read, the Python minor version and the fingerprint's version.
        functions: Every function, method and class reached, by ``"module.qualname"``.
        unresolved: The references that cannot be followed statically, sorted.
        constants: The constants read, by ``"module.NAME"``, as type-tagged values.
        roots: The qualified names of the roots.
        python: The Python minor version the syntax trees come from (``"3.11"``).

    """

    digest: str
    functions: Mapping[str, FunctionPrint]
    unresolved: tuple[Unresolved, ...] = ()
    constants: Mapping[str, str] = field(default_factory=lambda: types.MappingProxyType({}))
    roots: tuple[str, ...] = ()
    python: str = _PYTHON

    def __hash__(self) -> int:
        return hash(self.digest)

    def report(self) -> str:
        """Return a readable report: what is covered, with file:line, and what is not.

        Example:
            >>> __name__ = "example"  # this docstring's own module is library code
            >>> def double(x):
            ...     return 2 * x
            >>> print(fingerprint(double).report())  # doctest: +ELLIPSIS
            code fingerprint ... of example.double (Python ...)
            1 function or class reached:
              example.double  <doctest ...>:1
            no unresolved references: every reference was followed

        """
        count = len(self.functions)
        noun = "function or class" if count == 1 else "functions and classes"
        lines = [
            f"code fingerprint {self.digest} of {', '.join(self.roots) or '(no roots)'} "
            f"(Python {self.python})",
            f"{count} {noun} reached:",
        ]
        for key in sorted(self.functions):
            item = self.functions[key]
            note = {"bytecode": "  (no source: bytecode hashed)", "name": "  (library: name only)"}
            lines.append(f"  {key}  {item.location}{note.get(item.basis, '')}")
        if self.constants:
            lines.append(f"{len(self.constants)} constant(s) read:")
            lines.extend(f"  {key} = {value}" for key, value in sorted(self.constants.items()))
        if self.unresolved:
            lines.append(
                f"{len(self.unresolved)} unresolved reference(s) (not followed: a change "
                "through them is not noticed):"
            )
            lines.extend(f"  {item}" for item in self.unresolved)
        else:
            lines.append("no unresolved references: every reference was followed")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict, which :meth:`from_dict` turns back into this fingerprint."""
        return {
            "format": _FORMAT,
            "digest": self.digest,
            "python": self.python,
            "roots": list(self.roots),
            "functions": {
                key: {"digest": f.digest, "file": f.file, "line": f.line, "basis": f.basis}
                for key, f in sorted(self.functions.items())
            },
            "constants": dict(sorted(self.constants.items())),
            "unresolved": [
                {"where": u.where, "name": u.name, "reason": u.reason} for u in self.unresolved
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeFingerprint:
        """Rebuild a fingerprint from :meth:`to_dict`'s form.

        Raises:
            ValueError: When ``data`` is not that form (the message names the key).

        Example:
            >>> import json
            >>> fp = fingerprint(json.dumps)
            >>> CodeFingerprint.from_dict(fp.to_dict()) == fp
            True

        """
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"fingerprint data: format {found!r}; expected {_FORMAT!r}")
        try:
            functions = {
                _text(key, "functions key"): FunctionPrint(
                    _text(item["digest"], f"functions[{key!r}].digest"),
                    _text(item["file"], f"functions[{key!r}].file"),
                    _integer(item["line"], f"functions[{key!r}].line"),
                    _text(item.get("basis", "source"), f"functions[{key!r}].basis"),
                )
                for key, item in _mapping(data["functions"], "functions").items()
            }
            constants = {
                _text(key, "constants key"): _text(value, f"constants[{key!r}]")
                for key, value in _mapping(data.get("constants", {}), "constants").items()
            }
            unresolved = tuple(
                Unresolved(
                    _text(item["where"], "unresolved.where"),
                    _text(item["name"], "unresolved.name"),
                    _text(item["reason"], "unresolved.reason"),
                )
                for item in _sequence(data.get("unresolved", []), "unresolved")
            )
            roots = tuple(_text(r, "roots item") for r in _sequence(data["roots"], "roots"))
            return cls(
                digest=_text(data["digest"], "digest"),
                functions=types.MappingProxyType(functions),
                unresolved=unresolved,
                constants=types.MappingProxyType(constants),
                roots=roots,
                python=_text(data["python"], "python"),
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"fingerprint data: missing or malformed entry ({err!r})") from err

    def changes(self, old: CodeFingerprint) -> list[str]:
        """Return what changed from ``old`` to this fingerprint, one sorted line per item.

        Lines read ``"changed: mymod.helper (src/mymod.py:12)"``, ``"added: ..."`` and
        ``"removed: ... (file:line as it was)"``; a constant reads ``"changed: mymod.FACTOR
        (constant int:3 -> int:4)"``. Another Python minor version is one line (every syntax
        tree differs then).

        Example:
            >>> __name__ = "example"
            >>> def f(x):
            ...     return x + 1
            >>> old = fingerprint(f)
            >>> def f(x):
            ...     return x + 2
            >>> fingerprint(f).changes(old)  # doctest: +ELLIPSIS
            ['changed: example.f (<doctest ...>:1)']

        """
        if not isinstance(old, CodeFingerprint):
            raise TypeError(f"old = {old!r}: expected a CodeFingerprint")
        lines = []
        same_python = old.python == self.python
        if not same_python:
            lines.append(
                f"changed: Python {old.python} -> {self.python} (syntax trees differ between "
                "Python versions)"
            )
        for key, new in self.functions.items():
            was = old.functions.get(key)
            if was is None:
                lines.append(f"added: {key} ({new.location})")
            elif same_python and was.digest != new.digest:
                lines.append(f"changed: {key} ({new.location})")
        lines.extend(
            f"removed: {key} ({was.location})"
            for key, was in old.functions.items()
            if key not in self.functions
        )
        for key, value in self.constants.items():
            before = old.constants.get(key)
            if before is None:
                lines.append(f"added: {key} (constant {_short(value)})")
            elif before != value:
                lines.append(f"changed: {key} (constant {_short(before)} -> {_short(value)})")
        lines.extend(
            f"removed: {key} (constant {_short(value)})"
            for key, value in old.constants.items()
            if key not in self.constants
        )
        if not lines and old.digest != self.digest:
            lines.append("changed: the fingerprint's version or roots (same functions)")
        return sorted(lines)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} = {value!r}: expected a str")
    return value


def _integer(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} = {value!r}: expected an int")
    return value


def _mapping(value: Any, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} = {value!r}: expected a mapping")
    return value


def _sequence(value: Any, what: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{what} = {value!r}: expected a list")
    return list(value)


# ---------------------------------------------------------------- library or user code


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


_USER: dict[str, bool] = {}
_STDLIB_NAMES: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ()))


def is_user_module(module: types.ModuleType | str | None) -> bool:
    """Return whether ``module`` (a module or its name) is the user's own code.

    Library code is the standard library, anything installed in ``site-packages`` or
    ``dist-packages``, builtins and extension modules, and assay's own packages; everything
    else (a script, ``__main__``, a project checkout, a test module) is the user's. The answer
    is memoised per module name. ``None`` (code executed without a module) is the user's.

    Example:
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
    file = getattr(loaded, "__file__", None)
    if not file and loaded is not None:
        path = getattr(loaded, "__path__", None)  # a namespace package: its first folder
        file = next(iter(path), None) if path is not None else None
    if top in _ASSAY_PACKAGES or top == "builtins" or top in sys.builtin_module_names:
        user = False
    elif isinstance(file, str) and file:
        user = not _library_file(file)
    else:  # no file: a builtin or frozen module, interactive __main__, code made at run time
        user = top not in _STDLIB_NAMES
    if loaded is not None:  # a name not imported yet is decided again once it is
        _USER[name] = user
    return user


# ---------------------------------------------------------------- bytecode references

_OPS = dis.opmap


def _op(name: str) -> int:
    code = _OPS.get(name, -1)
    return code if code < 256 else -1  # pseudo-instructions never appear in co_code


_CACHE = _op("CACHE") if sys.version_info >= (3, 11) else -1
_EXTENDED_ARG = _op("EXTENDED_ARG")
_LOAD_GLOBAL = _op("LOAD_GLOBAL")
_GLOBAL_SHIFT = 1 if sys.version_info >= (3, 11) else 0
_LOAD_ATTR = _op("LOAD_ATTR")
_ATTR_SHIFT = 1 if sys.version_info >= (3, 12) else 0
_LOAD_METHOD = _op("LOAD_METHOD")
_LOAD_NAME = _op("LOAD_NAME")
_STORE_NAME = _op("STORE_NAME")
_STORE_GLOBAL = _op("STORE_GLOBAL")
_IMPORT_NAME = _op("IMPORT_NAME")
_IMPORT_FROM = _op("IMPORT_FROM")
_LOAD_CONST = _op("LOAD_CONST")
_LOAD_SMALL_INT = _op("LOAD_SMALL_INT")
_STORES = {_op("STORE_FAST"): "fast", _op("STORE_DEREF"): "deref", _STORE_NAME: "name"}
_STORES.pop(-1, None)
_SHUFFLES = {_op(n) for n in ("SWAP", "POP_TOP", "ROT_TWO", "COPY")} - {-1}
# local loads: (slot family, whether two slots are packed in the argument)
_LOADS: dict[int, tuple[str, bool]] = {
    _op(name): (family, packed)
    for name, family, packed in (
        ("LOAD_FAST", "fast", False),
        ("LOAD_FAST_CHECK", "fast", False),
        ("LOAD_FAST_BORROW", "fast", False),
        ("LOAD_FAST_LOAD_FAST", "fast", True),
        ("LOAD_FAST_BORROW_LOAD_FAST_BORROW", "fast", True),
        ("LOAD_DEREF", "deref", False),
        ("LOAD_NAME", "name", False),
    )
    if _op(name) != -1
}

# A reference found in bytecode: ("g", name, attribute chain) for a global, or
# ("i", level, module, path) for an import in the body (path None: a plain import whose
# uses are not followed; () the import alone).
_Ref = tuple[Any, ...]
_Scan = tuple[tuple[_Ref, ...], frozenset[str]]


def _instructions(code: types.CodeType) -> list[tuple[int, int]]:
    raw = code.co_code
    out = []
    extended = 0
    for op, arg in zip(raw[0::2], raw[1::2], strict=True):
        if op == _CACHE:
            continue
        if op == _EXTENDED_ARG:
            extended = (extended | arg) << 8
            continue
        out.append((op, extended | arg))
        extended = 0
    return out


def _chain(
    ins: list[tuple[int, int]], at: int, names: tuple[str, ...]
) -> tuple[tuple[str, ...], int]:
    """Return the attribute names loaded right after position ``at``, and the position after."""
    chain = []
    while at < len(ins):
        op, arg = ins[at]
        if op == _LOAD_ATTR:
            chain.append(names[arg >> _ATTR_SHIFT])
        elif op == _LOAD_METHOD:
            chain.append(names[arg])
        else:
            break
        at += 1
    return tuple(chain), at


def _constant_arg(code: types.CodeType, ins: tuple[int, int]) -> Any:
    op, arg = ins
    if op == _LOAD_CONST:
        return code.co_consts[arg]
    if op == _LOAD_SMALL_INT:
        return arg
    return None


def _scan_one(code: types.CodeType, refs: list[_Ref], stores: set[str]) -> None:
    names = code.co_names
    if not names:
        return  # no global, attribute or import in this code
    ins = _instructions(code)
    class_locals = {names[arg] for op, arg in ins if op == _STORE_NAME}
    # local slot -> [level, module, path, used, plain import]
    modules: dict[tuple[str, int], list[Any]] = {}
    at, end = 0, len(ins)
    while at < end:
        op, arg = ins[at]
        if op == _LOAD_GLOBAL or (op == _LOAD_NAME and names[arg] not in class_locals):
            name = names[arg >> _GLOBAL_SHIFT] if op == _LOAD_GLOBAL else names[arg]
            chain, at = _chain(ins, at + 1, names)
            refs.append(("g", name, chain))
            continue
        if op == _STORE_GLOBAL:
            stores.add(names[arg])
        elif op == _IMPORT_NAME:
            at = _scan_import(code, ins, at, refs, modules)
            continue
        elif op in _LOADS:
            family, packed = _LOADS[op]
            entry = modules.get((family, arg & 15 if packed else arg))
            if entry is not None:
                chain, at = _chain(ins, at + 1, names)
                if chain:
                    refs.append(("i", entry[0], entry[1], entry[2] + chain))
                    entry[3] = True
                continue
        at += 1
    refs.extend(("i", e[0], e[1], None) for e in modules.values() if e[4] and not e[3])


def _scan_import(
    code: types.CodeType,
    ins: list[tuple[int, int]],
    at: int,
    refs: list[_Ref],
    modules: dict[tuple[str, int], list[Any]],
) -> int:
    """Read the import at ``at``; return the position after it."""
    names = code.co_names
    module = names[ins[at][1]]
    level = _constant_arg(code, ins[at - 2]) if at >= 2 else 0
    fromlist = _constant_arg(code, ins[at - 1]) if at >= 1 else None
    level = level if isinstance(level, int) else 0
    refs.append(("i", level, module, ()))
    at += 1
    if not fromlist:  # import a.b (binds a) or import a.b as c (binds a.b)
        attributes = False
        while at < len(ins) and ins[at][0] not in _STORES:
            if ins[at][0] == _IMPORT_FROM:
                attributes = True
            elif ins[at][0] not in _SHUFFLES:
                return at
            at += 1
        if at < len(ins):
            op, arg = ins[at]
            bound = module if attributes else module.partition(".")[0]
            modules[(_STORES[op], arg)] = [level, bound, (), False, True]
            at += 1
        return at
    while at < len(ins) and ins[at][0] == _IMPORT_FROM:
        name = names[ins[at][1]]
        refs.append(("i", level, module, (name,)))
        at += 1
        if at < len(ins) and ins[at][0] in _STORES:
            op, arg = ins[at]
            modules[(_STORES[op], arg)] = [level, module, (name,), True, False]
            at += 1
    return at


_SCANS: dict[int, tuple[types.CodeType, _Scan]] = {}


def _scan(code: types.CodeType) -> _Scan:
    """Return the references of ``code`` and the code nested in it, and the globals it sets."""
    hit = _SCANS.get(id(code))
    if hit is not None and hit[0] is code:
        return hit[1]
    refs: list[_Ref] = []
    stores: set[str] = set()
    todo = [code]
    while todo:
        current = todo.pop()
        _scan_one(current, refs, stores)
        todo.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    result = (tuple(refs), frozenset(stores))
    _remember(_SCANS, id(code), (code, result))
    return result


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _LIMIT:
        memo.clear()
    memo[key] = value


# ---------------------------------------------------------------- syntax trees


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None)
    line: int = decorators[0].lineno if decorators else node.lineno  # type: ignore[attr-defined]
    return line


class _Source:
    """One file's syntax tree, with its functions by first line and classes by qualname."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.defs: dict[int, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
        self.classes: dict[str, list[ast.ClassDef]] = {}
        self.lambdas: dict[int, list[ast.Lambda]] | None = None
        try:
            self.tree: ast.Module | None = ast.parse("".join(lines))
        except (SyntaxError, ValueError, RecursionError):
            self.tree = None
            return
        self._index(self.tree.body, "")

    def _index(self, body: list[ast.stmt], prefix: str) -> None:
        # Statements only: definitions are statements (lambdas are found when needed).
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.defs.setdefault(_first_line(stmt), []).append(stmt)
                self._index(stmt.body, f"{prefix}{stmt.name}.<locals>.")
            elif isinstance(stmt, ast.ClassDef):
                qualname = prefix + stmt.name
                self.classes.setdefault(qualname, []).append(stmt)
                self._index(stmt.body, qualname + ".")
            else:
                for name in ("body", "orelse", "finalbody"):
                    inner = getattr(stmt, name, None)
                    if isinstance(inner, list):
                        self._index(inner, prefix)
                for part in (*getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())):
                    self._index(part.body, prefix)

    def function(self, code: types.CodeType) -> ast.AST | None:
        line = code.co_firstlineno
        if code.co_name == "<lambda>":
            if self.lambdas is None:
                self.lambdas = {}
                for node in ast.walk(self.tree) if self.tree is not None else ():
                    if isinstance(node, ast.Lambda):
                        self.lambdas.setdefault(node.lineno, []).append(node)
            found: list[Any] = self.lambdas.get(line, [])
            if len(found) > 1:
                found = _lambda_at(found, code)
        else:
            found = [n for n in self.defs.get(line, ()) if n.name == code.co_name]
        return found[0] if len(found) == 1 else None  # ambiguous: its bytecode is hashed

    def class_node(self, cls: type) -> ast.ClassDef | None:
        found = self.classes.get(cls.__qualname__, [])
        if len(found) <= 1:
            return found[0] if found else None
        first = getattr(cls, "__firstlineno__", None)  # Python 3.13+
        lines = {first} if isinstance(first, int) else set()
        lines.update(f.__code__.co_firstlineno for v in vars(cls).values() for f in _members(v))
        for node in found:
            end = node.end_lineno or node.lineno
            if any(_first_line(node) <= line <= end for line in lines):
                return node
        return found[-1]  # the last definition is the one bound at import


def _lambda_at(found: list[ast.Lambda], code: types.CodeType) -> list[ast.Lambda]:
    """Return the lambdas of one line whose body is where ``code`` starts (by column)."""
    positions = getattr(code, "co_positions", None)  # Python 3.11+
    if positions is None:
        return found
    start = next(((p[0], p[2]) for p in positions() if p[0] is not None and p[3]), None)
    if start is None:
        return found
    line, column = start
    exact = [n for n in found if (n.body.lineno, n.body.col_offset) == (line, column)]
    if exact:
        return exact
    inside = [
        n
        for n in found
        if n.lineno == line and n.col_offset <= (column or 0) < (n.end_col_offset or 0)
    ]
    return sorted(inside, key=lambda n: n.col_offset)[-1:]  # the innermost that contains it


_SOURCES: dict[str, _Source] = {}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _body(statements: list[ast.stmt]) -> list[ast.stmt]:
    """``statements`` without a leading docstring."""
    first = statements[0] if statements else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return statements[1:] or [ast.Pass()]
    return statements


_SHAPES: dict[type, tuple[str, tuple[str, ...], bool]] = {}
_LEAVES: dict[type, str] = {ast.Load: "Load", ast.Store: "Store", ast.Del: "Del"}


def _serialise(node: ast.AST, out: list[str], bare: bool = False) -> None:
    """Append the tree of ``node`` without positions or docstrings (``bare``: decorators).

    The same information as ``ast.dump(node, include_attributes=False)``, about twice as
    fast: node types, field values and nesting.
    """
    kind = type(node)
    shape = _SHAPES.get(kind)
    if shape is None:
        shape = _SHAPES[kind] = (kind.__name__, kind._fields, kind in _SCOPES)
    name, fields, scope = shape
    append = out.append
    append(name)
    for field_name in fields:
        value: Any = getattr(node, field_name, None)
        value_kind = type(value)
        if value_kind is list:
            if scope and field_name == "body":
                value = _body(value)
            elif scope and bare and field_name == "decorator_list":
                value = []
            append("[")
            for item in value:
                if isinstance(item, ast.AST):
                    _serialise(item, out)
                else:
                    append(repr(item))
            append("]")
        elif value_kind is str:
            append(repr(value))
        elif value is None:
            append("None")
        elif value_kind in _LEAVES:  # a name's context: a leaf, no recursion
            append(_LEAVES[value_kind])
        elif isinstance(value, ast.AST):
            _serialise(value, out)
        else:
            append(repr(value))
    append(")")


def _digest(kind: str, parts: Iterable[str], size: int = 16) -> str:
    text = "\x1f".join([kind, *parts])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def _code_parts(code: types.CodeType, out: list[str]) -> None:
    """Append what ``code`` does, without positions (the fallback without source)."""
    out.extend((code.co_name, code.co_code.hex(), repr(code.co_names), repr(code.co_varnames)))
    out.extend((repr(code.co_freevars), repr(code.co_cellvars), str(code.co_argcount)))
    out.extend((str(code.co_kwonlyargcount), str(code.co_posonlyargcount)))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out.append("<code>")
            _code_parts(const, out)
        else:
            out.append(_constant(const, exact=False) or type(const).__qualname__)


# ---------------------------------------------------------------- values


_TAGS: dict[type, str] = {
    type(None): "none",
    bool: "bool",
    int: "int",
    float: "float",
    complex: "complex",
    str: "str",
    bytes: "bytes",
    type(...): "ellipsis",
}


def _constant(value: Any, exact: bool = True, depth: int = 0) -> str | None:
    """Return a type-tagged repr of simple immutable data, or None for anything else."""
    kind = type(value)
    tag = _TAGS.get(kind)
    if tag is not None:
        text = f"{tag}:{value!r}"
        if len(text) > 200:  # a long text counts by its hash, so the report stays readable
            text = f"{tag}:sha256={_digest('value', [text], 32)}"
        return text
    if depth > 20:
        return None
    if kind is tuple or kind is frozenset:
        parts = [_constant(item, exact, depth + 1) for item in value]
        if any(p is None for p in parts):
            return None
        inner = ",".join(sorted(parts) if kind is frozenset else parts)  # type: ignore[arg-type]
        text = f"{kind.__name__}:({inner})"
        return text if len(text) <= 200 else f"{kind.__name__}:sha256={_digest('v', [text], 32)}"
    return None if exact else kind.__qualname__


def _members(value: Any) -> list[types.FunctionType]:
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


def _instance_dict(value: Any) -> dict[str, Any]:
    try:
        found = object.__getattribute__(value, "__dict__")
    except Exception:  # no __dict__, or a property that fails
        return {}
    return found if isinstance(found, dict) else {}


def _same_file(first: str, second: str) -> bool:
    return first == second or (
        not first.startswith("<") and os.path.abspath(first) == os.path.abspath(second)
    )


def _function_module(func: types.FunctionType) -> str | None:
    """Return the module that defines ``func`` (functools.wraps copies ``__module__``)."""
    name = func.__globals__.get("__name__")
    return name if isinstance(name, str) else None


def _qualname(func: types.FunctionType) -> str:
    return str(getattr(func.__code__, "co_qualname", func.__qualname__))


def _key(value: Any) -> str:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, types.FunctionType):
        return f"{_function_module(value) or '<unknown>'}.{_qualname(value)}"
    module = getattr(value, "__module__", None) or "builtins"
    return f"{module}.{getattr(value, '__qualname__', getattr(value, '__name__', repr(value)))}"


def _root(value: Any) -> Any:
    """Return the function, class or routine behind a root; TypeError for anything else."""
    target = value
    for _ in range(100):
        if isinstance(target, (staticmethod, classmethod, types.MethodType)):
            target = target.__func__
        elif isinstance(target, functools.partial):
            target = target.func
        elif not isinstance(target, type) and "__wrapped__" in _instance_dict(target):
            target = _instance_dict(target)["__wrapped__"]
        else:
            break
    if isinstance(target, (type, types.FunctionType)) or inspect.isroutine(target):
        return target
    raise TypeError(
        f"fingerprint: root {value!r} of type {type(value).__qualname__}: expected a function, "
        "method or class (or an object wrapping one, such as an @operation)"
    )


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


# ---------------------------------------------------------------- the walk


_FUNCTIONS: dict[
    tuple[int, bool], tuple[types.CodeType, FunctionPrint, str | None, tuple[_Ref, ...]]
] = {}
# Weak references: a cache never keeps a class alive (a notebook's redefined class, a step
# class the step registry must see go). The code of its methods is checked too: a reload
# tool (IPython's autoreload) swaps the code of methods inside the same class object.
_ClassEntry = tuple[
    "weakref.ref[type]", tuple[Any, ...], FunctionPrint, "str | None", tuple[_Ref, ...], str
]
_CLASSES: dict[int, _ClassEntry] = {}


def _method_codes(cls: type) -> tuple[Any, ...]:
    return tuple(f.__code__ for v in vars(cls).values() for f in _members(v))


class _Walk:
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
        self.checked: set[str] = set()
        self.roots: list[str] = []

    # ------------------------------------------------------------ bookkeeping

    def report(self, where: str, name: str, reason: str) -> None:
        self.unresolved.add(Unresolved(where, name, reason))

    def check(self, owner: Any, namespace: Mapping[str, Any], name: str, value: Any) -> None:
        """Remember that ``namespace[name]`` is ``value``.

        ``owner`` is the function or module whose namespace it is (None for builtins and
        ``sys.modules``): the memo reaches the namespace through it, without holding it.
        """
        self.names[(id(namespace), name)] = (owner, namespace, name, value)

    def source(self, file: str, module_globals: Mapping[str, Any] | None) -> _Source | None:
        if file not in self.checked:
            self.checked.add(file)
            linecache.checkcache(file)  # a file rewritten and imported again is read again
        lines = linecache.getlines(file, module_globals)  # type: ignore[arg-type]
        if not lines:
            return None
        found = _SOURCES.get(file)
        if found is None or found.lines is not lines:
            found = _Source(lines)
            _remember(_SOURCES, file, found)
        return found if found.tree is not None else None

    def add(self, value: Any, root: bool = False) -> str:
        known = self.keys.get(id(value))
        if known is not None:
            return known
        key = base = _key(value)
        count = 1
        while key in self.short:  # another object of the same name (e.g. a factory's closures)
            count += 1
            key = f"{base}#{count}"
        self.short[key] = (
            value.__qualname__
            if isinstance(value, type)
            else _qualname(value)
            if isinstance(value, types.FunctionType)
            else key
        )
        self.keys[id(value)] = key
        self.keep.append(value)
        self.todo.append((value, key, root))
        return key

    # ------------------------------------------------------------ roots and the loop

    def add_root(self, value: Any) -> None:
        target = _root(value)
        user = (
            is_user_module(target.__module__)
            if isinstance(target, type)
            else is_user_module(_function_module(target))
            if isinstance(target, types.FunctionType)
            else False
        )
        if user:
            key = self.add(target, root=True)
        else:  # library code counts by its name
            key = self.keys.get(id(target)) or _key(target)
            self.keys[id(target)] = key
            self.keep.append(target)
            code = getattr(target, "__code__", None)
            self.short[key] = key
            self.prints[key] = FunctionPrint(
                _digest("name", [key]),
                getattr(code, "co_filename", ""),
                getattr(code, "co_firstlineno", 0),
                "name",
            )
        if key not in self.roots:
            self.roots.append(key)

    def run(self) -> None:
        while self.todo:
            value, key, root = self.todo.pop()
            try:
                if isinstance(value, type):
                    self.visit_class(value, key)
                else:
                    self.visit_function(value, key, root)
            except Exception as err:  # an object no rule foresaw: said, never fatal
                self.report(key, key, f"not followed ({type(err).__name__}: {err})")
                self.prints.setdefault(key, FunctionPrint(_digest("name", [key]), "", 0, "name"))

    def reach(self, value: Any, where: str, written: str, depth: int = 0) -> None:
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
                self.add(value)
            return
        if isinstance(value, types.FunctionType) and is_user_module(_function_module(value)):
            self.add(value)
        wrapped = _instance_dict(value).get("__wrapped__")
        if wrapped is not None and wrapped is not value and depth < 100:
            self.reach(wrapped, where, written, depth + 1)

    # ------------------------------------------------------------ functions

    def visit_function(self, func: types.FunctionType, key: str, root: bool) -> None:
        code = func.__code__
        hit = _FUNCTIONS.get((id(code), root))
        if hit is not None and hit[0] is code:
            _, print_, reason, refs = hit
        else:
            refs = ()
            source = self.source(code.co_filename, func.__globals__)
            node = source.function(code) if source is not None else None
            out: list[str] = []
            try:
                if node is None:
                    raise LookupError
                _serialise(node, out, bare=root)
                line = getattr(node, "lineno", code.co_firstlineno)
                print_ = FunctionPrint(_digest("source", out), code.co_filename, line)
                reason = None
                if "." not in _qualname(func):
                    # A module-level function's decorators and default values are evaluated
                    # in the module (a nested function's, in the code around it; a method's,
                    # in its class): the names they load are followed from here.
                    refs = _outer_refs(node, decorators=not root)
            except (LookupError, RecursionError):
                out = []
                _code_parts(code, out)
                print_ = FunctionPrint(
                    _digest("bytecode", out), code.co_filename, code.co_firstlineno, "bytecode"
                )
                reason = "no source, bytecode hashed"
            _remember(_FUNCTIONS, (id(code), root), (code, print_, reason, refs))
        self.prints[key] = print_
        if reason:
            self.report(key, _qualname(func), reason)
        self.scan_function(func, key)
        if refs:
            builtin_names = vars(builtins)
            for ref in refs:
                self.global_ref(func, func.__globals__, builtin_names, ref[1], ref[2], key)
        owner = self.owner(func)
        if owner is not None:
            self.reach(owner, key, owner.__qualname__)

    def owner(self, func: types.FunctionType) -> type | None:
        """Return the class a method is defined in (its code is part of the method's context)."""
        parts = _qualname(func).split(".")
        if len(parts) < 2 or "<locals>" in parts:
            return None
        # through the namespace the method was defined in (not sys.modules, which a reload
        # may have given another module object)
        target: Any = func.__globals__.get(parts[0], _MISSING)
        self.check(func, func.__globals__, parts[0], target)
        for part in parts[1:-1]:
            target = vars(target).get(part) if isinstance(target, type) else None
        return target if isinstance(target, type) else None

    def scan_function(self, func: types.FunctionType, where: str) -> None:
        code = func.__code__
        self.functions.append(func)
        refs, stores = _scan(code)
        namespace = func.__globals__
        builtin_names = func.__builtins__ if hasattr(func, "__builtins__") else vars(builtins)
        if not isinstance(builtin_names, dict):
            builtin_names = vars(builtin_names)
        self.state.update((id(namespace), name) for name in stores)
        for ref in refs:
            if ref[0] == "g":
                self.global_ref(func, namespace, builtin_names, ref[1], ref[2], where)
            else:
                self.import_ref(namespace, ref[1], ref[2], ref[3], where)
        for index, (var, cell) in enumerate(
            zip(code.co_freevars, func.__closure__ or (), strict=False)
        ):
            try:
                value = cell.cell_contents
            except ValueError:  # not assigned yet
                continue
            self.cells.append((func, index, value))
            self.value(value, where, var, f"{where}.<closure>.{var}", None, "closure value")
        for value in (*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()):
            if isinstance(value, (type, types.FunctionType)) or _instance_dict(value).get(
                "__wrapped__"
            ):
                self.reach(value, where, getattr(value, "__qualname__", repr(value)))

    def global_ref(
        self,
        owner: Any,
        namespace: Mapping[str, Any],
        builtin_names: Mapping[str, Any],
        name: str,
        chain: tuple[str, ...],
        where: str,
    ) -> None:
        value = namespace.get(name, _MISSING)
        self.check(owner, namespace, name, value)
        if value is _MISSING:
            value = builtin_names.get(name, _MISSING)
            self.check(None, builtin_names, name, value)
            if value is _MISSING:
                self.report(where, name, "undefined: not a local, global or builtin name")
            elif id(value) in _DYNAMIC_IDS:
                self.report(where, name, _DYNAMIC_REASON)
            return
        module = namespace.get("__name__")
        self.follow(value, name, chain, where, f"{module}.{name}", name, namespace)

    def import_ref(
        self,
        namespace: Mapping[str, Any],
        level: int,
        module: str,
        path: tuple[str, ...] | None,
        where: str,
    ) -> None:
        written = f"{'.' * level}{module}"
        try:
            absolute = module
            if level:
                package = namespace.get("__package__") or str(namespace.get("__name__", ""))
                absolute = importlib.util.resolve_name(written, package)
            found = sys.modules.get(absolute)
            if found is None:
                found = importlib.import_module(absolute)
        except Exception as err:  # whatever importing raises is the user's module's error
            if path == ():
                self.report(
                    where, f"import {written}", f"import failed ({type(err).__name__}: {err})"
                )
            return
        self.check(None, sys.modules, absolute, found)
        if path is None:
            if is_user_module(found):
                self.report(
                    where,
                    written,
                    "a module imported in the body and used as a value: what it reaches is "
                    "not followed",
                )
            return
        if path:  # (a submodule it names is followed through the attributes read from it)
            self.follow(found, module, path, where, "", "", None, modules_are_values=False)

    def follow(
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
                    self.report(
                        where,
                        written,
                        "a module of your code used as a value: what it reaches is not followed",
                    )
                return
            attribute, chain = chain[0], chain[1:]
            written = f"{written}.{attribute}"
            if not is_user_module(value):
                if value.__name__ in _DYNAMIC_MODULES:
                    found = getattr(value, attribute, None)
                    if id(found) in _DYNAMIC_IDS:
                        self.report(where, written, _DYNAMIC_REASON)
                return
            names = vars(value)
            found = names.get(attribute, _MISSING)
            self.check(value, names, attribute, found)
            if found is _MISSING:
                found = sys.modules.get(f"{value.__name__}.{attribute}", _MISSING)
            if found is _MISSING and not modules_are_values and hasattr(value, "__path__"):
                try:  # `from package import submodule` imports it
                    found = importlib.import_module(f"{value.__name__}.{attribute}")
                except Exception:
                    found = _MISSING
            if found is _MISSING and "__getattr__" in names:
                try:
                    found = getattr(value, attribute)
                except Exception:
                    found = _MISSING
            if found is _MISSING:
                self.report(where, written, f"module {value.__name__} has no such attribute")
                return
            key, short, namespace = f"{value.__name__}.{attribute}", attribute, names
            value = found
        self.value(value, where, written, key, short, "global", namespace)

    def value(
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
            self.report(where, written, _DYNAMIC_REASON)
            return
        text = _constant(value)
        if text is not None:
            self.constants[key] = (short or key.rpartition(".")[2], text)
            if namespace is not None:
                self.origins[key] = (id(namespace), short or "", where)
            return
        if isinstance(
            value,
            (
                type,
                types.FunctionType,
                types.MethodType,
                staticmethod,
                classmethod,
                functools.partial,
            ),
        ) or "__wrapped__" in _instance_dict(value):
            self.reach(value, where, written)
            return
        if isinstance(value, (types.ModuleType, *_CODE_TYPES)):
            return
        kind_of = type(value)
        if is_user_module(kind_of.__module__):
            self.report(
                where,
                written,
                f"{kind} ({kind_of.__qualname__}): its value is not fingerprinted (its class is "
                "followed)",
            )
            self.reach(kind_of, where, written)
            return
        if kind_of in (tuple, list, dict, set, frozenset) and len(value) <= 10_000:
            # a dispatch table: the code it holds is followed, the rest is data
            items = [*value, *value.values()] if kind_of is dict else list(value)
            held = [item for item in items if isinstance(item, (type, types.FunctionType))]
            for item in held:
                self.reach(item, where, written)
            if held:
                self.report(
                    where,
                    written,
                    f"{kind} ({kind_of.__qualname__}): its value is not fingerprinted (the "
                    "functions and classes in it are followed)",
                )
                return
        try:
            named = callable(value) and isinstance(getattr(value, "__name__", None), str)
        except Exception:
            named = False
        if not named:  # a library's function-like object (a ufunc, a jit dispatcher) is code
            self.report(
                where, written, f"{kind} ({kind_of.__qualname__}): its value is not fingerprinted"
            )

    # ------------------------------------------------------------ classes

    def visit_class(self, cls: type, key: str) -> None:
        hit = _CLASSES.get(id(cls))
        codes = _method_codes(cls)
        if (
            hit is not None
            and hit[0]() is cls
            and len(hit[1]) == len(codes)
            and all(ref() is code for ref, code in zip(hit[1], codes, strict=True))
        ):
            _, _, print_, reason, refs, file = hit
        else:
            print_, reason, refs, file = self.class_print(cls)
            weak = tuple(weakref.ref(code) for code in codes)
            _remember(_CLASSES, id(cls), (weakref.ref(cls), weak, print_, reason, refs, file))
        self.prints[key] = print_
        if reason:
            self.report(key, cls.__qualname__, reason)
        for base in cls.__bases__:
            self.reach(base, key, base.__qualname__)
        if type(cls) is not type:
            self.reach(type(cls), key, type(cls).__qualname__)
        module = sys.modules.get(cls.__module__)
        namespace: Mapping[str, Any] = vars(module) if module is not None else {}
        own = vars(cls)
        for ref in refs:
            if ref[1] not in own:
                self.global_ref(module, namespace, vars(builtins), ref[1], ref[2], key)
        prefix = cls.__qualname__ + "."
        for name, member in list(own.items()):
            if isinstance(member, type):
                self.reach(member, key, name)
                continue
            for func in _members(member):
                if not (_qualname(func).startswith(prefix) or func.__qualname__.startswith(prefix)):
                    self.reach(func, key, name)  # a function defined elsewhere, bound here
                elif _same_file(func.__code__.co_filename, file):
                    self.scan_function(func, f"{key}.{name}")
                # else: generated from the class's definition (dataclass, attrs): covered by it

    def class_print(self, cls: type) -> tuple[FunctionPrint, str | None, tuple[_Ref, ...], str]:
        module = sys.modules.get(cls.__module__)
        file = getattr(module, "__file__", None) or ""
        if not file:  # a notebook's classes: their methods say where they are
            prefix = cls.__qualname__ + "."
            file = next(
                (
                    f.__code__.co_filename
                    for v in vars(cls).values()
                    for f in _members(v)
                    if _qualname(f).startswith(prefix) and f.__code__.co_filename != "<string>"
                ),
                "",
            )
        source = self.source(file, vars(module) if module is not None else None) if file else None
        node = source.class_node(cls) if source is not None else None
        out: list[str] = []
        if node is not None:
            try:
                _serialise(node, out)
                return (
                    FunctionPrint(_digest("source", out), file, node.lineno),
                    None,
                    _class_refs(node),
                    file,
                )
            except RecursionError:
                out = []
        for name, member in sorted(vars(cls).items()):
            out.append(name)
            for func in _members(member):
                _code_parts(func.__code__, out)
            out.append(_constant(member) or "")
        print_ = FunctionPrint(_digest("bytecode", out), file, 0, "bytecode")
        return print_, "no source, bytecode hashed", (), file

    # ------------------------------------------------------------ the result

    def finish(self) -> CodeFingerprint:
        for key, (namespace, name, where) in list(self.origins.items()):
            if (namespace, name) in self.state:  # assigned with `global`: state, not a constant
                del self.constants[key]
                self.names.pop((namespace, name), None)
                self.report(where, name, "global state (assigned with `global`): not fingerprinted")
        parts = [_VERSION, _PYTHON]
        parts.extend(sorted(f"f:{self.short[k]}:{p.digest}" for k, p in self.prints.items()))
        parts.extend(sorted(f"c:{name}:{value}" for name, value in self.constants.values()))
        return CodeFingerprint(
            digest=_digest("fingerprint", parts, 32),
            functions=types.MappingProxyType(dict(sorted(self.prints.items()))),
            unresolved=tuple(sorted(self.unresolved)),
            constants=types.MappingProxyType(
                {key: value for key, (_, value) in sorted(self.constants.items())}
            ),
            roots=tuple(self.roots),
            python=_PYTHON,
        )


def _outer_refs(node: ast.AST, decorators: bool) -> tuple[_Ref, ...]:
    """Return the names a ``def`` loads outside its body: decorators and default values."""
    args = node.args  # type: ignore[attr-defined]
    parts = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    if decorators:
        parts.extend(getattr(node, "decorator_list", ()))
    return _loads(parts)


def _class_refs(node: ast.ClassDef) -> tuple[_Ref, ...]:
    """Return the names a class statement loads outside its methods' bodies.

    Bases, decorators, class attributes and default values, with the attributes read from them.
    """
    return _loads([*node.decorator_list, *node.bases, *node.keywords, *node.body])


def _loads(nodes: Iterable[ast.AST]) -> tuple[_Ref, ...]:
    """Return the names ``nodes`` load in their own scope, with the attributes read from them."""
    loads: list[tuple[str, tuple[str, ...]]] = []
    stored: set[str] = set()

    def visit(item: ast.AST) -> None:
        if isinstance(item, ast.Attribute):
            chain = []
            current: ast.AST = item
            while isinstance(current, ast.Attribute):
                chain.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name):
                if isinstance(current.ctx, ast.Load):
                    loads.append((current.id, tuple(reversed(chain))))
                return
            visit(current)
            return
        if isinstance(item, ast.Name):
            if isinstance(item.ctx, ast.Load):
                loads.append((item.id, ()))
            else:
                stored.add(item.id)
            return
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for part in (*getattr(item, "decorator_list", ()), *item.args.defaults):
                visit(part)
            for default in item.args.kw_defaults:
                if default is not None:
                    visit(default)
            return
        if isinstance(item, ast.ClassDef):
            for part in (*item.decorator_list, *item.bases, *item.keywords):
                visit(part)
            return
        if isinstance(item, ast.AnnAssign):
            visit(item.target)
            if item.value is not None:
                visit(item.value)
            return
        for child in ast.iter_child_nodes(item):
            visit(child)

    for part in nodes:
        visit(part)
    seen: set[tuple[str, tuple[str, ...]]] = set()
    refs: list[_Ref] = []
    for name, chain in loads:
        if name not in stored and (name, chain) not in seen:
            seen.add((name, chain))
            refs.append(("g", name, chain))
    return tuple(refs)


# ---------------------------------------------------------------- memo


class _Id(int):
    """An object recognised by its id: it cannot be referenced weakly, nor held (data)."""

    __slots__ = ()


def _pin(value: Any) -> Any:
    """Return a token that recognises ``value`` again without keeping the user's code alive.

    Constants are held (they reference nothing); functions, classes, modules and code
    objects are referenced weakly; other data (a dict, a list) is recognised by its id.
    """
    kind = type(value)
    if value is _MISSING or kind in _TAGS:
        return value
    if (kind is tuple or kind is frozenset) and _constant(value) is not None:
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


@dataclass
class _Memo:
    """A computed fingerprint, and what must still hold for it to be served again.

    Nothing here keeps the user's functions or classes alive: roots and resolved values are
    referenced weakly (or by id), namespaces through the function or module that owns them.
    """

    roots: tuple[Any, ...]
    fingerprint: CodeFingerprint
    # (owner or namespace, ((name, pin kind, pin), ...)), one per namespace
    names: list[tuple[Any, tuple[tuple[str, int, Any], ...]]]
    functions: list[tuple[Any, Any, Any, Any]]  # (function, code, defaults, kwdefaults)
    cells: list[tuple[Any, int, Any]]  # (function, closure index, value)

    @classmethod
    def of(cls, roots: tuple[Any, ...], fp: CodeFingerprint, walk: _Walk) -> _Memo:
        groups: dict[int, tuple[Any, list[tuple[str, int, Any]]]] = {}
        for owner, namespace, name, value in walk.names.values():
            group = groups.setdefault(id(namespace), (_owner_pin(owner, namespace), []))
            pin = _pin(value)
            group[1].append((name, _kind(pin), pin))
        return cls(
            tuple(_pin(root) for root in roots),
            fp,
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
        for holder, entries in self.names:
            namespace = holder
            if type(holder) is weakref.ref:
                owner = holder()
                if owner is None:
                    return False
                namespace = owner.__globals__ if type(owner) is types.FunctionType else vars(owner)
            get = namespace.get
            for name, kind, pin in entries:
                current = get(name, _MISSING)
                if kind == _HELD:
                    if pin is not current:
                        return False
                elif kind == _WEAK:
                    target = pin()
                    if target is None or target is not current:
                        return False
                elif pin != id(current):
                    return False
        for function, code, defaults, kwdefaults in self.functions:
            owner = function()
            if owner is None or code() is not owner.__code__:
                return False  # gone, or its code swapped in place (a reload tool)
            now, kw_now = owner.__defaults__, owner.__kwdefaults__
            if (defaults is not now and not _same(defaults, now)) or (
                kwdefaults is not kw_now and not _same(kwdefaults, kw_now)
            ):
                return False
        for function, index, value in self.cells:
            owner = function()
            try:
                if owner is None or not _same(value, owner.__closure__[index].cell_contents):
                    return False
            except (ValueError, TypeError, IndexError):
                return False
        return True


_MEMO: dict[tuple[int, ...], _Memo] = {}
_LOCK = threading.RLock()


def fingerprint(*roots: Any) -> CodeFingerprint:
    """Return the transitive fingerprint of the code of ``roots``.

    Each root is a function, method or class, or an object wrapping one (an ``@operation``,
    a ``functools.wraps`` decorator); the decorators of a root function do not count. The
    fingerprint covers each root and every function, method and class of the user's own code
    they reach (see the module's documentation for what is followed and what stops the walk),
    with the constants they read; :attr:`CodeFingerprint.unresolved` lists what cannot be
    followed. Roots in library code count by their name only.

    The digest is valid for one Python minor version: syntax trees differ between versions,
    so the version is part of the digest, which never matches across versions.

    A fingerprint is computed once per tuple of roots and process, then served from memory
    while every name it resolved still binds the same object.

    Raises:
        TypeError: When a root is neither a function, a method nor a class.

    Example:
        >>> __name__ = "example"  # this docstring's own module is library code
        >>> SCALE = 3
        >>> def helper(x):
        ...     return x * SCALE
        >>> def run(x):
        ...     return helper(x) + 1  # a comment does not count
        >>> fp = fingerprint(run)
        >>> sorted(fp.functions), dict(fp.constants)
        (['example.helper', 'example.run'], {'example.SCALE': 'int:3'})
        >>> len(fp.digest), fingerprint(run) is fp
        (32, True)

    """
    if not roots:
        raise TypeError("fingerprint() takes at least one function, method or class")
    held = tuple(r.__func__ if type(r) is types.MethodType else r for r in roots)
    key = tuple(map(id, held))
    memo = _MEMO.get(key)
    if memo is not None and memo.fresh(held):
        return memo.fingerprint
    with _LOCK:
        walk = _Walk()
        for root in held:
            walk.add_root(root)
        walk.run()
        result = walk.finish()
        if memo is not None and memo.fingerprint == result:
            result = memo.fingerprint
        _remember(_MEMO, key, _Memo.of(held, result, walk))
    return result
