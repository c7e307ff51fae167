"""``ScopeStorage``: the storage view of a scope that the reference API hands out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._state import flatten

if TYPE_CHECKING:
    from ._scope import param_scope


class ScopeStorage:
    """The reference API's storage object of a scope; ``storage()`` returns a plain dict."""

    __slots__ = ("_scope",)

    def __init__(self, scope: param_scope) -> None:
        self._scope = scope

    def storage(self) -> dict[str, Any]:
        """Return every visible value as a new plain dict of dotted keys."""
        return flatten(self._scope._chain)

    def keys(self) -> list[str]:
        """Return every visible key."""
        return self._scope.keys()

    def get(self, key: str) -> Any:
        """Return the stored value of ``key``; raise ``MissingParameterError`` if none."""
        return self._scope[key]

    def put(self, key: str, value: Any) -> None:
        """Set ``key`` in the scope."""
        self._scope.put(key, value)

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several keys in the scope."""
        self._scope.update(values)
