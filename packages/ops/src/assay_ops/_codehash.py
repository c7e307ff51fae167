"""Code hash: a fingerprint of what a function does, blind to comments and formatting."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

# Part of every hash: bump it when the normalisation below changes on purpose.
_VERSION = b"assay.code.v1\x00"
_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _SCOPES) or not node.body:
            continue
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            node.body = node.body[1:] or [ast.Pass()]


def code_hash(func: Callable[..., Any]) -> str:
    """Return a 16-hex-digit hash of ``func``'s normalised source, or ``""`` without source.

    The source is parsed and the syntax tree dumped without positions, docstrings or the
    function's own decorators, so comments, blank lines, formatting and documentation do not
    change the hash, and any change to the code does. The tree's layout is Python's, so the
    hash is stable for a given Python minor version.

    Examples:
        >>> def f(x):
        ...     return x + 1  # one more
        >>> len(code_hash(f))
        16

    """
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return ""
    source = textwrap.dedent(source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # A lambda inside a larger expression has no parseable source of its own: fall back
        # to the text, so the hash still follows the code.
        text = b"text\x00" + source.strip().encode("utf-8")
        return hashlib.sha256(_VERSION + text).hexdigest()[:16]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []
    _strip_docstrings(tree)
    dump = ast.dump(tree, annotate_fields=True, include_attributes=False)
    return hashlib.sha256(_VERSION + dump.encode("utf-8")).hexdigest()[:16]
