"""The bound on the per-process caches behind code fingerprints.

Parsed files, scanned code objects, the prints of functions and classes and the computed
fingerprints are each cached for the process. A long session (a notebook redefining its
functions again and again) would make them grow without end, so a cache that reaches
``LIMIT`` entries is emptied, and filled again by use.
"""

from __future__ import annotations

from typing import Any

LIMIT = 4096  # entries per memo before it is emptied (redefinitions in a long session)


def remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Store ``value`` under ``key``, emptying ``cache`` first when it is full."""
    if len(cache) >= LIMIT:
        cache.clear()
    cache[key] = value
