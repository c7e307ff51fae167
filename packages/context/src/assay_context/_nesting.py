"""How deeply a value nests containers: measured without recursion, bounded where values enter.

A value that nests lists, tuples, sets, deques or mappings more than `MAX_NESTING` levels
deep is refused where it enters a context (see ``_freeze.py``); `nesting_depth` says how deep
it goes, at any depth.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping

#: The exact types of scalars: no container to look into, no ABC check needed.
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})

#: Most levels of containers (lists, tuples, dicts, sets) nested in one another that a value
#: may hold where it enters: deeper values are refused with an error naming their key.
MAX_NESTING = 100

_CONTAINERS = (list, tuple, set, frozenset, collections.deque)


def nesting_depth(value: object) -> int | None:
    """Return how many containers are nested in ``value`` (None if it contains itself).

    Lists, tuples, sets, deques and mappings (their values) count; a scalar is 0, ``[]`` is 1,
    ``{"a": [[1]]}`` is 3. It walks without recursion, so any depth can be measured.

    Examples:
        >>> nesting_depth(5), nesting_depth([]), nesting_depth({"a": [[1]]})
        (0, 1, 3)

    """

    def children(item: object) -> Iterator[object] | None:
        if isinstance(item, Mapping):
            return iter(item.values())
        if isinstance(item, _CONTAINERS):
            return iter(item)
        return None

    top = children(value)
    if top is None:
        return 0
    done: dict[int, int] = {}  # depth of containers already measured (shared parts count once)
    path = {id(value)}
    stack: list[tuple[int, Iterator[object], int]] = [(id(value), top, 0)]
    while stack:
        ident, items, deepest = stack[-1]
        for item in items:
            if type(item) in _SCALARS:  # the common case: no container, no ABC check
                continue
            inner = children(item)
            if inner is None:
                continue
            if id(item) in done:
                deepest = max(deepest, done[id(item)])
                continue
            if id(item) in path:
                return None
            stack[-1] = (ident, items, deepest)
            path.add(id(item))
            stack.append((id(item), inner, 0))
            break
        else:
            stack.pop()
            path.discard(ident)
            done[ident] = deepest + 1
            if stack:
                parent, rest, best = stack[-1]
                stack[-1] = (parent, rest, max(best, deepest + 1))
    return done[id(value)]
