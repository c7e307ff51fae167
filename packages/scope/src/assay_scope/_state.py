"""The state every part of assay_scope shares: the current scope and the write counter.

Each copy of the package (an installed one, a vendored one) has its own module objects and so
its own state; two copies never see each other's scopes.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any

#: The values published by ``param_scope.frozen()``: the base every scope falls back to.
ROOT_VALUES: dict[str, Any] = {}


class _Root:
    """The scope under all others, current in a thread or task that entered no scope yet.

    It is never handed out: writing at top level first creates a scope local to the thread or
    task (``_writable``), so that ``param_scope.x = 1`` in one thread is not seen by another.
    """

    __slots__ = ()
    _own = ROOT_VALUES
    _chain = (ROOT_VALUES,)
    _prev = None
    _owner = None

    def _writable(self) -> Any:
        # Imported here: _scope imports this module, and the root must exist before it.
        from ._scope import param_scope

        return param_scope._context_root()


ROOT = _Root()

#: The innermost entered scope of this thread or asyncio task.
CURRENT: ContextVar[Any] = ContextVar("assay_scope.current", default=ROOT)
# Bound once: the hot paths call these without looking the methods up each time.
get_current = CURRENT.get
set_current = CURRENT.set

#: ``VERSION[0]`` grows on every write to any scope. Caches of resolved values (``auto_param``)
#: are valid while the scope object and this number are unchanged.
VERSION = [0]

#: ``RECORDING[0]`` counts the record blocks open in any thread; while it is zero, reads skip
#: the look-up of the recorders entirely.
RECORDING = [0]

#: The recorders open in this thread or task, innermost last: dicts of key -> (value, defaulted).
RECORDERS: ContextVar[tuple[dict[str, tuple[Any, bool]], ...]] = ContextVar(
    "assay_scope.recorders", default=()
)

#: Serialises writes, so that the version grows strictly and never goes back.
LOCK = threading.Lock()


def bump() -> None:
    """Mark that some scope was written; call with ``LOCK`` held."""
    VERSION[0] += 1


def flatten(chain: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """Merge a chain of value dicts (innermost first) into one dict, inner values winning."""
    merged: dict[str, Any] = {}
    for values in reversed(chain):
        merged.update(values)
    return merged


def note(key: str, value: Any, defaulted: bool) -> None:
    """Tell every open recorder of this context that ``key`` was read as ``value``."""
    for reads in RECORDERS.get():
        reads[key] = (value, defaulted)
