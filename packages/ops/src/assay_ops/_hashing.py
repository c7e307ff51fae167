"""How a code fingerprint writes what it hashes: digests of labelled parts, constants by value.

A digest is the sha256 of a kind label and parts, joined by a separator, cut to 16 hex digits
for one function's print and 32 for a whole fingerprint. Simple immutable data (None, bool,
int, float, complex, str, bytes, Ellipsis, and tuples and frozensets of those) counts by a
type-tagged text, so that ``1``, ``1.0`` and ``True`` differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

TAGS: dict[type, str] = {
    type(None): "none",
    bool: "bool",
    int: "int",
    float: "float",
    complex: "complex",
    str: "str",
    bytes: "bytes",
    type(...): "ellipsis",
}


def digest(kind: str, parts: Iterable[str], size: int = 16) -> str:
    """Return ``size`` hex digits of the sha256 of ``kind`` and ``parts``."""
    text = "\x1f".join([kind, *parts])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def constant(value: Any, exact: bool = True, depth: int = 0) -> str | None:
    """Return a type-tagged repr of simple immutable data, or None for anything else.

    With ``exact=False``, anything else gives the name of its type instead of None.
    """
    kind = type(value)
    tag = TAGS.get(kind)
    if tag is not None:
        text = f"{tag}:{value!r}"
        if len(text) > 200:  # a long text counts by its hash, so the report stays readable
            text = f"{tag}:sha256={digest('value', [text], 32)}"
        return text
    if depth > 20:
        return None
    if kind is tuple or kind is frozenset:
        parts = [constant(item, exact, depth + 1) for item in value]
        if any(p is None for p in parts):
            return None
        inner = ",".join(sorted(parts) if kind is frozenset else parts)  # type: ignore[arg-type]
        text = f"{kind.__name__}:({inner})"
        return text if len(text) <= 200 else f"{kind.__name__}:sha256={digest('v', [text], 32)}"
    return None if exact else kind.__qualname__
