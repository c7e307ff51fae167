"""Syntax trees of source: finding a function's or class's definition, and writing it out.

Comments, docstrings, formatting, blank lines and positions do not count: a function counts by
its syntax tree, serialised without positions and docstrings (the information of
``ast.dump(node, include_attributes=False)``, written out by a faster serialiser,
``serialise``). The layout of syntax trees is Python's own and changes between minor
versions, so a fingerprint is valid for one Python minor version.

A file is parsed once (``read_source``, cached while ``linecache`` holds the same
lines); its functions are found by their first line and name, its classes by qualified name.
The names a ``def`` or ``class`` statement loads outside the bodies of functions (decorators,
default values, bases, class attributes) are read from the tree too (``outer_refs``,
``class_refs``).
"""

from __future__ import annotations

import ast
import linecache
import types
from collections.abc import Iterable, Mapping
from typing import Any

from ._bytecode import Ref
from ._caches import remember
from ._objects import members

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_SHAPES: dict[type, tuple[str, tuple[str, ...], bool]] = {}
_LEAVES: dict[type, str] = {ast.Load: "Load", ast.Store: "Store", ast.Del: "Del"}


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None)
    line: int = decorators[0].lineno if decorators else node.lineno  # type: ignore[attr-defined]
    return line


def _inner_bodies(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """Return the statement lists of a compound statement (if, for, while, with, try, match)."""
    bodies = [getattr(stmt, name, None) for name in ("body", "orelse", "finalbody")]
    found: list[list[ast.stmt]] = [inner for inner in bodies if isinstance(inner, list)]
    found.extend(
        part.body for part in (*getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ()))
    )
    return found


class Source:
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
                for inner in _inner_bodies(stmt):
                    self._index(inner, prefix)

    def _lambda_index(self) -> dict[int, list[ast.Lambda]]:
        """Return the lambdas by line, indexed on the first need (few files are asked)."""
        if self.lambdas is None:
            self.lambdas = {}
            for node in ast.walk(self.tree) if self.tree is not None else ():
                if isinstance(node, ast.Lambda):
                    self.lambdas.setdefault(node.lineno, []).append(node)
        return self.lambdas

    def function(self, code: types.CodeType) -> ast.AST | None:
        """Return the definition (or lambda) of ``code``; None when not found or ambiguous."""
        line = code.co_firstlineno
        if code.co_name == "<lambda>":
            found: list[Any] = self._lambda_index().get(line, [])
            if len(found) > 1:
                found = _lambda_at(found, code)
        else:
            found = [n for n in self.defs.get(line, ()) if n.name == code.co_name]
        return found[0] if len(found) == 1 else None  # ambiguous: its bytecode is hashed

    def class_node(self, cls: type) -> ast.ClassDef | None:
        """Return the ``class`` statement of ``cls``, told apart by its methods' lines."""
        found = self.classes.get(cls.__qualname__, [])
        if len(found) <= 1:
            return found[0] if found else None
        first = getattr(cls, "__firstlineno__", None)  # Python 3.13+
        lines = {first} if isinstance(first, int) else set()
        lines.update(f.__code__.co_firstlineno for v in vars(cls).values() for f in members(v))
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


SOURCES: dict[str, Source] = {}


def read_source(
    file: str, module_globals: Mapping[str, Any] | None, checked: set[str]
) -> Source | None:
    """Return the parsed source of ``file``; None when there is none or it does not parse.

    ``checked`` holds the files already compared with the disk by the current walk: each file
    is compared once per walk, not once per function.
    """
    if file not in checked:
        checked.add(file)
        linecache.checkcache(file)  # a file rewritten and imported again is read again
    lines = linecache.getlines(file, module_globals)  # type: ignore[arg-type]
    if not lines:
        return None
    found = SOURCES.get(file)
    if found is None or found.lines is not lines:
        found = Source(lines)
        remember(SOURCES, file, found)
    return found if found.tree is not None else None


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


def serialise(node: ast.AST, out: list[str], bare: bool = False) -> None:
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
    # The loops stay inline: this is the hot path of a cold fingerprint (a helper call per
    # list field makes it about 8% slower).
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
                    serialise(item, out)
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
            serialise(value, out)
        else:
            append(repr(value))
    append(")")


def outer_refs(node: ast.AST, decorators: bool) -> tuple[Ref, ...]:
    """Return the names a ``def`` loads outside its body: decorators and default values."""
    args = node.args  # type: ignore[attr-defined]
    parts = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    if decorators:
        parts.extend(getattr(node, "decorator_list", ()))
    return _Loads(parts).refs()


def class_refs(node: ast.ClassDef) -> tuple[Ref, ...]:
    """Return the names a class statement loads outside its methods' bodies.

    Bases, decorators, class attributes and default values, with the attributes read from them.
    """
    return _Loads([*node.decorator_list, *node.bases, *node.keywords, *node.body]).refs()


class _Loads:
    """The names some nodes load in their own scope, with the attributes read from them."""

    def __init__(self, nodes: Iterable[ast.AST]) -> None:
        self.loads: list[tuple[str, tuple[str, ...]]] = []
        self.stored: set[str] = set()
        for part in nodes:
            self.visit(part)

    def refs(self) -> tuple[Ref, ...]:
        """Return the global references: the names loaded and not stored, each once."""
        seen: set[tuple[str, tuple[str, ...]]] = set()
        refs: list[Ref] = []
        for name, chain in self.loads:
            if name not in self.stored and (name, chain) not in seen:
                seen.add((name, chain))
                refs.append(("g", name, chain))
        return tuple(refs)

    def visit(self, item: ast.AST) -> None:
        if isinstance(item, ast.Attribute):
            self._attribute(item)
        elif isinstance(item, ast.Name):
            self._name(item)
        elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            self._definition(item)
        elif isinstance(item, ast.ClassDef):
            for part in (*item.decorator_list, *item.bases, *item.keywords):
                self.visit(part)
        elif isinstance(item, ast.AnnAssign):
            self.visit(item.target)  # and the value: the annotation is not followed
            if item.value is not None:
                self.visit(item.value)
        else:
            for child in ast.iter_child_nodes(item):
                self.visit(child)

    def _attribute(self, item: ast.Attribute) -> None:
        """Read an attribute chain (``a.b.c``): the name it starts from, the attributes read."""
        chain = []
        current: ast.AST = item
        while isinstance(current, ast.Attribute):
            chain.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            self.visit(current)  # a chain on a call or a subscript: what that loads
        elif isinstance(current.ctx, ast.Load):
            self.loads.append((current.id, tuple(reversed(chain))))

    def _name(self, item: ast.Name) -> None:
        if isinstance(item.ctx, ast.Load):
            self.loads.append((item.id, ()))
        else:
            self.stored.add(item.id)

    def _definition(self, item: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        """Read a nested function: only its decorators and default values run in this scope."""
        for part in (*getattr(item, "decorator_list", ()), *item.args.defaults):
            self.visit(part)
        for default in item.args.kw_defaults:
            if default is not None:
                self.visit(default)
