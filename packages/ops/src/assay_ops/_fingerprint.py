"""Transitive code fingerprints: the code a function runs, as far as it is the user's own.

[`fingerprint`][assay_ops.fingerprint] hashes the normalised syntax tree of each root (a function,
method or class) and of every function, method and class of the user's own code that the roots
reach, followed transitively and through cycles: the names their bodies load and the modules they
import, the classes of methods and their bases, closure cells, default values, decorators and tables
of functions, and the module-level constants they read. Library code stops the walk. What cannot be
followed statically is listed in [`CodeFingerprint.unresolved`][assay_ops.CodeFingerprint], never
silently ignored. The details live beside the code that does each part:

- ``_codewalk``: what the walk follows, and what it lists as unresolved;
- ``_usercode``: what is library code, and what is the user's;
- ``_syntax`` and ``_prints``: how one function or class counts (its syntax tree, without
  comments, docstrings, formatting and positions; its bytecode when its source is not found);
- ``_bytecode``: how the names a body uses are read from its bytecode;
- ``_freshness``: what must still hold for a fingerprint to be served again.

The layout of syntax trees is Python's own and changes between minor versions, so a
fingerprint is valid for one Python minor version: the digest includes it, and never matches
across versions.

A fingerprint is computed once per tuple of roots and process, then served from memory while
the names it resolved still bind the same objects (a helper redefined in a notebook, a module
reloaded, code swapped in place or a constant reassigned gives a new fingerprint). The memo
and the caches never keep the user's functions or classes alive.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._bytecode import SCANS
from ._caches import remember
from ._codewalk import Walk
from ._coverage import FunctionPrint, Unresolved
from ._freshness import Freshness
from ._hashing import digest
from ._prints import CLASSES, FUNCTIONS
from ._syntax import SOURCES

__all__ = ["CodeFingerprint", "FunctionPrint", "Unresolved", "fingerprint"]

# Part of every digest: bump it when what a fingerprint covers or how it encodes it changes.
_VERSION = "assay.fingerprint.v1"
_FORMAT = "assay-fingerprint-1"
_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"

# The per-process caches, under the names the benchmark empties them by.
_SCANS, _SOURCES, _FUNCTIONS, _CLASSES = SCANS, SOURCES, FUNCTIONS, CLASSES


# ---------------------------------------------------------------- the result


@dataclass(frozen=True)
class CodeFingerprint:
    """What the code of some roots is, transitively: see [`fingerprint`][assay_ops.fingerprint].

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

        Examples:
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
        """Return a JSON-able dict.

        [`from_dict`][assay_ops.CodeFingerprint.from_dict] turns it back into this fingerprint.
        """
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
        """Rebuild a fingerprint from [`to_dict`][assay_ops.CodeFingerprint.to_dict]'s form.

        Raises:
            ValueError: When ``data`` is not that form (the message names the key).

        Examples:
            >>> import json
            >>> fp = fingerprint(json.dumps)
            >>> CodeFingerprint.from_dict(fp.to_dict()) == fp
            True

        """
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"fingerprint data: format {found!r}; expected {_FORMAT!r}")
        try:
            functions = _functions_from(data["functions"])
            constants = _constants_from(data.get("constants", {}))
            unresolved = _unresolved_from(data.get("unresolved", []))
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

        Examples:
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
        lines.extend(_function_changes(old.functions, self.functions, same_python))
        lines.extend(_constant_changes(old.constants, self.constants))
        if not lines and old.digest != self.digest:
            lines.append("changed: the fingerprint's version or roots (same functions)")
        return sorted(lines)


def _function_changes(
    old: Mapping[str, FunctionPrint], new: Mapping[str, FunctionPrint], same_python: bool
) -> list[str]:
    """Return the lines of the functions and classes added, changed and removed."""
    lines = []
    for key, now in new.items():
        was = old.get(key)
        if was is None:
            lines.append(f"added: {key} ({now.location})")
        elif same_python and was.digest != now.digest:
            lines.append(f"changed: {key} ({now.location})")
    lines.extend(f"removed: {key} ({was.location})" for key, was in old.items() if key not in new)
    return lines


def _constant_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Return the lines of the constants added, changed and removed."""
    lines = []
    for key, value in new.items():
        before = old.get(key)
        if before is None:
            lines.append(f"added: {key} (constant {_short(value)})")
        elif before != value:
            lines.append(f"changed: {key} (constant {_short(before)} -> {_short(value)})")
    lines.extend(
        f"removed: {key} (constant {_short(value)})" for key, value in old.items() if key not in new
    )
    return lines


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- reading to_dict's form


def _functions_from(data: Any) -> dict[str, FunctionPrint]:
    return {
        _text(key, "functions key"): FunctionPrint(
            _text(item["digest"], f"functions[{key!r}].digest"),
            _text(item["file"], f"functions[{key!r}].file"),
            _integer(item["line"], f"functions[{key!r}].line"),
            _text(item.get("basis", "source"), f"functions[{key!r}].basis"),
        )
        for key, item in _mapping(data, "functions").items()
    }


def _constants_from(data: Any) -> dict[str, str]:
    return {
        _text(key, "constants key"): _text(value, f"constants[{key!r}]")
        for key, value in _mapping(data, "constants").items()
    }


def _unresolved_from(data: Any) -> tuple[Unresolved, ...]:
    return tuple(
        Unresolved(
            _text(item["where"], "unresolved.where"),
            _text(item["name"], "unresolved.name"),
            _text(item["reason"], "unresolved.reason"),
        )
        for item in _sequence(data, "unresolved")
    )


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


# ---------------------------------------------------------------- computing, with a memo


def _result(walk: Walk) -> CodeFingerprint:
    """Return the fingerprint of what ``walk`` reached."""
    walk.retract_global_state()
    parts = [_VERSION, _PYTHON]
    parts.extend(sorted(f"f:{walk.short[k]}:{p.digest}" for k, p in walk.prints.items()))
    parts.extend(sorted(f"c:{name}:{value}" for name, value in walk.constants.values()))
    return CodeFingerprint(
        digest=digest("fingerprint", parts, 32),
        functions=types.MappingProxyType(dict(sorted(walk.prints.items()))),
        unresolved=tuple(sorted(walk.unresolved)),
        constants=types.MappingProxyType(
            {key: value for key, (_, value) in sorted(walk.constants.items())}
        ),
        roots=tuple(walk.roots),
        python=_PYTHON,
    )


class _Memo(NamedTuple):
    """A computed fingerprint, and what must still hold for it to be served again."""

    fingerprint: CodeFingerprint
    freshness: Freshness


_MEMO: dict[tuple[int, ...], _Memo] = {}
_LOCK = threading.RLock()


def fingerprint(*roots: Any) -> CodeFingerprint:
    """Return the transitive fingerprint of the code of ``roots``.

    Each root is a function, method or class, or an object wrapping one (an ``@operation``, a
    ``functools.wraps`` decorator); the decorators of a root function do not count. The fingerprint
    covers each root and every function, method and class of the user's own code they reach (see the
    module's documentation for what is followed and what stops the walk), with the constants they
    read; [`CodeFingerprint.unresolved`][assay_ops.CodeFingerprint] lists what cannot be followed.
    Roots in library code count by their name only.

    The digest is valid for one Python minor version: syntax trees differ between versions,
    so the version is part of the digest, which never matches across versions.

    A fingerprint is computed once per tuple of roots and process, then served from memory
    while every name it resolved still binds the same object.

    Raises:
        TypeError: When a root is neither a function, a method nor a class.

    Examples:
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
    if memo is not None and memo.freshness.fresh(held):
        return memo.fingerprint
    with _LOCK:
        walk = Walk()
        for root in held:
            walk.add_root(root)
        walk.run()
        result = _result(walk)
        if memo is not None and memo.fingerprint == result:
            result = memo.fingerprint
        remember(_MEMO, key, _Memo(result, Freshness.of(held, walk)))
    return result
