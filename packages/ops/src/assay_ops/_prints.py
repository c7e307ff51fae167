"""The print of one function or class: the digest of its syntax tree, or of its bytecode.

A function or class counts by its normalised syntax tree (see ``_syntax``); when its
source cannot be found (or is ambiguous), its bytecode is hashed instead and the fingerprint
says so. A class is hashed whole: all its methods and class attributes. Prints are cached per
code object and per class, with the names the statement loads outside the bodies.
"""

from __future__ import annotations

import ast
import sys
import types
import weakref
from typing import Any

from ._bytecode import Ref, code_parts
from ._caches import remember
from ._coverage import FunctionPrint
from ._hashing import constant, digest
from ._objects import members, qualname_of
from ._syntax import class_refs, outer_refs, read_source, serialise

_NO_SOURCE = "no source, bytecode hashed"

# (print, why its bytecode was hashed or None, names loaded outside the body)
FunctionFound = tuple[FunctionPrint, "str | None", tuple[Ref, ...]]
# the same, and the file of the class
ClassFound = tuple[FunctionPrint, "str | None", tuple[Ref, ...], str]

FUNCTIONS: dict[
    tuple[int, bool], tuple[types.CodeType, FunctionPrint, str | None, tuple[Ref, ...]]
] = {}
# Weak references: a cache never keeps a class alive (a notebook's redefined class, a step
# class the step registry must see go). The code of its methods is checked too: a reload
# tool (IPython's autoreload) swaps the code of methods inside the same class object.
_ClassEntry = tuple[
    "weakref.ref[type]", tuple[Any, ...], FunctionPrint, "str | None", tuple[Ref, ...], str
]
CLASSES: dict[int, _ClassEntry] = {}


def function_print(func: types.FunctionType, root: bool, checked: set[str]) -> FunctionFound:
    """Return the print of ``func`` (a root's decorators do not count), cached per code object.

    ``checked`` holds the files the current walk already compared with the disk.
    """
    code = func.__code__
    hit = FUNCTIONS.get((id(code), root))
    if hit is not None and hit[0] is code:
        return hit[1], hit[2], hit[3]
    print_, reason, refs = _function_print(func, root, checked)
    remember(FUNCTIONS, (id(code), root), (code, print_, reason, refs))
    return print_, reason, refs


def _function_print(func: types.FunctionType, root: bool, checked: set[str]) -> FunctionFound:
    code = func.__code__
    source = read_source(code.co_filename, func.__globals__, checked)
    node = source.function(code) if source is not None else None
    if node is not None:
        try:
            return _source_print(func, node, root)
        except RecursionError:
            pass
    out: list[str] = []
    code_parts(code, out)
    print_ = FunctionPrint(
        digest("bytecode", out), code.co_filename, code.co_firstlineno, "bytecode"
    )
    return print_, _NO_SOURCE, ()


def _source_print(func: types.FunctionType, node: ast.AST, root: bool) -> FunctionFound:
    code = func.__code__
    out: list[str] = []
    serialise(node, out, bare=root)
    line = getattr(node, "lineno", code.co_firstlineno)
    print_ = FunctionPrint(digest("source", out), code.co_filename, line)
    if "." in qualname_of(func):
        return print_, None, ()
    # A module-level function's decorators and default values are evaluated in the module (a
    # nested function's, in the code around it; a method's, in its class): the names they
    # load are followed from here.
    return print_, None, outer_refs(node, decorators=not root)


def _method_codes(cls: type) -> tuple[Any, ...]:
    return tuple(f.__code__ for v in vars(cls).values() for f in members(v))


def class_print(cls: type, checked: set[str]) -> ClassFound:
    """Return the print of ``cls``, hashed whole, cached per class while its methods' code stays.

    ``checked`` holds the files the current walk already compared with the disk.
    """
    hit = CLASSES.get(id(cls))
    codes = _method_codes(cls)
    if (
        hit is not None
        and hit[0]() is cls
        and len(hit[1]) == len(codes)
        and all(ref() is code for ref, code in zip(hit[1], codes, strict=True))
    ):
        return hit[2], hit[3], hit[4], hit[5]
    print_, reason, refs, file = _class_print(cls, checked)
    weak = tuple(weakref.ref(code) for code in codes)
    remember(CLASSES, id(cls), (weakref.ref(cls), weak, print_, reason, refs, file))
    return print_, reason, refs, file


def _class_print(cls: type, checked: set[str]) -> ClassFound:
    module = sys.modules.get(cls.__module__)
    file: str = getattr(module, "__file__", None) or _methods_file(cls)
    namespace = vars(module) if module is not None else None
    source = read_source(file, namespace, checked) if file else None
    node = source.class_node(cls) if source is not None else None
    out: list[str] = []
    if node is not None:
        try:
            serialise(node, out)
            print_ = FunctionPrint(digest("source", out), file, node.lineno)
            return print_, None, class_refs(node), file
        except RecursionError:
            out = []
    for name, member in sorted(vars(cls).items()):
        out.append(name)
        for func in members(member):
            code_parts(func.__code__, out)
        out.append(constant(member) or "")
    return FunctionPrint(digest("bytecode", out), file, 0, "bytecode"), _NO_SOURCE, (), file


def _methods_file(cls: type) -> str:
    """Return the file the methods of ``cls`` say they are in (for a notebook's class)."""
    prefix = cls.__qualname__ + "."
    return next(
        (
            f.__code__.co_filename
            for v in vars(cls).values()
            for f in members(v)
            if qualname_of(f).startswith(prefix) and f.__code__.co_filename != "<string>"
        ),
        "",
    )
