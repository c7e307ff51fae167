"""The state every part of assay_scope shares: the current scope, the frozen base, the counters.

Each copy of the package (an installed one, a vendored one) has its own module objects and so
its own state; two copies never see each other's scopes.

The frozen base (what ``param_scope.frozen()`` publishes) is read through snapshots, which
never change: a thread or task takes the snapshot of the moment at its first use of a scope (its
first read, write or entered scope) and keeps it, and every chain of values it builds ends with
it. So publishing reaches threads started later, while the thread that published, and every
other thread already at work, keep seeing what they saw, as each thread of hyperparameter keeps
the copy of the base it made at its first use.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any

#: Serialises writes, so that the version grows strictly and never goes back.
LOCK = threading.Lock()

#: ``VERSION[0]`` grows on every write to any scope and on every change of the frozen base.
#: Caches of resolved values (``auto_param``) are valid while the scope object and this number
#: are unchanged.
VERSION = [0]


class _Snapshot(dict[str, Any]):
    """A copy of the frozen base, never changed: the last link of a chain of scope values.

    Its type tells the base apart from a scope's own values (``frozen()`` leaves it out).
    ``unlayered`` is the base of the same moment without what running ``isolated_base()``
    blocks had published (itself when none had): a block starts from it.
    """

    __slots__ = ("unlayered",)

    unlayered: _Snapshot


class _Base(dict[str, Any]):
    """The frozen base of the process, ``ROOT_VALUES``: what a thread that enters no scope sees.

    A change made to it in place (``clear()``, ``update()``, ...) is taken as a new base for
    the threads and tasks that enter their first scope later, as ``frozen()`` does.
    """

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> None:
        with LOCK:
            dict.__setitem__(self, key, value)
            refresh()

    def __delitem__(self, key: str) -> None:
        with LOCK:
            dict.__delitem__(self, key)
            refresh()

    def clear(self) -> None:
        with LOCK:
            dict.clear(self)
            refresh()

    def update(self, *args: Any, **kwargs: Any) -> None:
        with LOCK:
            dict.update(self, *args, **kwargs)
            refresh()

    def pop(self, *args: Any) -> Any:
        with LOCK:
            value = dict.pop(self, *args)
            refresh()
        return value

    def popitem(self) -> tuple[str, Any]:
        with LOCK:
            item = dict.popitem(self)
            refresh()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        with LOCK:
            value = dict.setdefault(self, key, default)
            refresh()
        return value

    def __ior__(self, other: Any) -> _Base:  # type: ignore[override,misc]
        self.update(other)
        return self


#: The values published by ``param_scope.frozen()``: the base every scope falls back to.
ROOT_VALUES = _Base()


class _Root:
    """The bottom of a thread's or task's scopes: the frozen base, and nothing of its own.

    ``ROOT``, the one every new thread and task starts from, reads the latest base. The others
    are pinned: each reads the snapshot that was the base when it was made. A scope made where
    ``ROOT`` is current chains to the pinned root of the moment (``ROOT._pinned``), and leaving
    it makes that pinned root current; a first read where ``ROOT`` is current makes it current
    at once (``pin``). So a thread or task keeps the base of its first use.

    A root is never handed out: writing at top level first creates a scope local to the thread
    or task (``_writable``), so that ``param_scope.x = 1`` in one thread is not seen by another.
    """

    __slots__ = ("_chain", "_pinned")
    # The fields of a scope that the code walking from scope to scope reads.
    _s: tuple[None, None] = (None, None)
    _owner = None

    _chain: tuple[dict[str, Any], ...]
    _pinned: _Root

    def _writable(self) -> Any:
        # Imported here: _scope imports this module, and the root must exist before it.
        from ._scope import param_scope

        return param_scope._context_root(self._pinned)


#: While ``isolated_base()`` blocks have published: the process base without what they
#: published (``_base`` keeps it).
UNLAYERED: list[dict[str, Any] | None] = [None]


def _snapshot(values: dict[str, Any]) -> _Snapshot:
    snapshot = _Snapshot(values)
    snapshot.unlayered = snapshot
    return snapshot


def _pin(snapshot: _Snapshot) -> _Root:
    root = _Root()
    root._chain = (snapshot,)
    root._pinned = root
    return root


#: The root that new threads and tasks start from; it reads the latest frozen base.
ROOT = _Root()
ROOT._pinned = _pin(_snapshot({}))
ROOT._chain = ROOT._pinned._chain


def refresh() -> None:
    """Take ``ROOT_VALUES`` as the new frozen base; call with ``LOCK`` held."""
    snapshot = _Snapshot(ROOT_VALUES)
    unlayered = UNLAYERED[0]
    snapshot.unlayered = snapshot if unlayered is None else _snapshot(unlayered)
    pinned = _pin(snapshot)
    # _pinned first: a scope made meanwhile pins the base it reads or an older one.
    ROOT._pinned = pinned
    ROOT._chain = pinned._chain
    VERSION[0] += 1


#: The innermost entered scope of this thread or asyncio task.
CURRENT: ContextVar[Any] = ContextVar("assay_scope.current", default=ROOT)
# Bound once: the hot paths call these without looking the methods up each time.
get_current = CURRENT.get
set_current = CURRENT.set


def pin() -> _Root:
    """Make the frozen base of the moment this thread's or task's own, and return its root.

    Called where ``ROOT`` is current, at the first read of a thread or task that has entered
    no scope: from then on it keeps that base, as a thread of hyperparameter keeps the copy
    of the base it made at its first use.
    """
    pinned = ROOT._pinned
    set_current(pinned)
    return pinned


#: ``RECORDING[0]`` counts the record blocks open in any thread; while it is zero, reads skip
#: the look-up of the recorders entirely.
RECORDING = [0]

#: The recorders open in this thread or task, innermost last: dicts of key -> (value, defaulted).
RECORDERS: ContextVar[tuple[dict[str, tuple[Any, bool]], ...]] = ContextVar(
    "assay_scope.recorders", default=()
)


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
