"""The frozen base, and blocks that keep what they publish to it to themselves.

``param_scope.frozen()`` publishes the current values as the base of the process
(``_state.ROOT_VALUES``), which threads and tasks take at their first use of a scope (a plain
thread starts with an empty context, so it sees nothing else). Inside an
``isolated_base()`` block (an operation's run), what it publishes is withdrawn when the block
ends, so that one run cannot change what later runs see.

While such blocks have published, the base is the base of before them (``_BASE``) with what
each of them published laid over it, the latest publisher on top; when a block ends, its layer
is removed and the base is rebuilt from the others. Blocks that run at the same time in
different threads therefore never restore each other's values, and never resurrect them.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._state import LOCK, ROOT, ROOT_VALUES, UNLAYERED, _Snapshot, flatten, get_current, refresh

if TYPE_CHECKING:
    from ._scope import param_scope


class _Block:
    """One ``isolated_base()`` block: what it published, and whether it has ended."""

    __slots__ = ("closed", "published")

    def __init__(self) -> None:
        self.published: dict[str, Any] = {}  # what it laid over the process base
        self.closed = False


#: The innermost isolated block of this thread or task (copied into ScopedThread, bind_scope).
BLOCK: ContextVar[_Block | None] = ContextVar("assay_scope.block", default=None)

#: The blocks whose publications are in the process base now, the latest publisher last.
_ACTIVE: dict[_Block, None] = {}

#: While ``_ACTIVE`` is not empty: the process base without the blocks' publications.
_BASE = UNLAYERED


def publish(chain: tuple[dict[str, Any], ...]) -> None:
    """Publish the values of a scope's chain as the base (``param_scope.frozen()``).

    The base the chain falls back to (a snapshot) is left out: its values were published
    already, and may hold what blocks that have ended since published, which must not come
    back. The chains of scopes that exist already keep their snapshot, so the caller's own
    view does not change: once it leaves the scopes that set the values, they are gone for it.
    """
    if chain and type(chain[-1]) is _Snapshot:
        chain = chain[:-1]
    values = flatten(chain)
    block = BLOCK.get()
    with LOCK:
        if block is None:
            base = _BASE[0]
            if base is None:
                dict.update(ROOT_VALUES, values)
            else:  # blocks have published: the base under them changes, they stay on top
                base.update(values)
                _rebuild(base)
        elif not block.closed:  # a thread that outlived its block publishes nothing
            if _BASE[0] is None:
                _BASE[0] = dict(ROOT_VALUES)
            block.published.update(values)
            _ACTIVE.pop(block, None)
            _ACTIVE[block] = None
            dict.update(ROOT_VALUES, values)
        refresh()


def _close(block: _Block) -> None:
    """Withdraw what ``block`` published: the base becomes what the other blocks left."""
    with LOCK:
        block.closed = True
        if block in _ACTIVE:
            del _ACTIVE[block]
            base = _BASE[0]
            assert base is not None  # set by the block's first publication
            _rebuild(base)
            if not _ACTIVE:
                _BASE[0] = None
            refresh()


def _rebuild(base: dict[str, Any]) -> None:
    """Make the process base ``base`` with every active block's publication over it (LOCK held)."""
    merged = dict(base)
    for block in _ACTIVE:
        merged.update(block.published)
    dict.clear(ROOT_VALUES)
    dict.update(ROOT_VALUES, merged)


@functools.cache
def _scope_class() -> type[param_scope]:
    # Imported on first use, once: _scope imports this module for param_scope.frozen(). An
    # import statement run on every entry costs a look through the import system.
    from ._scope import param_scope

    return param_scope


class isolated_base:
    """A block that keeps what ``param_scope.frozen()`` publishes inside it to itself.

    ``param_scope.frozen()`` inside the block publishes as outside it: threads started while
    the block runs see the values. When the block ends, however it ends (an exception,
    ``SystemExit``, ``KeyboardInterrupt``), what it published is withdrawn and the base is what
    it would be had the block never run; values published meanwhile outside any block stay.
    ``OperationWrapper.run`` runs every operation in one, so that a run's ``frozen()`` never
    reaches later runs.

    The block starts from the frozen base of the process as it is when the block starts, as
    a thread started then would (its thread or task may keep an older one), without what
    other blocks running at the same time have published; inside it, the caller's scopes are
    seen as usual. As everywhere, the code inside keeps the base it started with: values that
    other threads publish meanwhile are not seen in it, nor are its own once the scopes that
    set them are left. A plain thread reads the base of the whole process: started while two
    blocks publish at the same time, it sees what both published (the later one where both set
    a key). A thread that outlives its block publishes nothing to the process; a plain thread
    that calls ``frozen()`` publishes outside any block: that stays.

    Entering the block returns its scope, which is empty and current inside it; an instance is
    entered once at a time.

    Examples:
        >>> import threading
        >>> from assay_scope import param_scope
        >>> def read_in_a_new_thread():
        ...     seen = []
        ...     thread = threading.Thread(target=lambda: seen.append(param_scope.run_seed(0)))
        ...     thread.start(); thread.join()
        ...     return seen[0]
        >>> with isolated_base(), param_scope(run_seed=7):
        ...     param_scope.frozen()
        ...     read_in_a_new_thread()
        7
        >>> read_in_a_new_thread()
        0

    """

    __slots__ = ("_block", "_scope", "_token")

    _block: _Block | None
    _scope: param_scope
    _token: Token[_Block | None]

    def __init__(self) -> None:
        self._block = None

    def __enter__(self) -> param_scope:
        if self._block is not None:
            raise RuntimeError("this isolated_base() block is already entered")
        scope = _scope_class()()
        if BLOCK.get() is None:
            # The block starts from the process base as it is now, as a thread started now
            # would, but without what other blocks running now have published (a block
            # inside another one keeps that one's base).
            current = get_current()
            chain = (ROOT._pinned if current is ROOT else current)._chain
            if type(chain[-1]) is _Snapshot:
                base = ROOT._pinned._chain[0]
                assert type(base) is _Snapshot
                scope.__dict__["_chain"] = (scope._s[0], *chain[:-1], base.unlayered)
        block = _Block()
        self._block, self._scope = block, scope
        scope.__enter__()
        self._token = BLOCK.set(block)
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        block = self._block
        if block is None:
            raise RuntimeError("this isolated_base() block is left but it was not entered")
        self._block = None
        try:
            try:
                BLOCK.reset(self._token)
            finally:
                self._scope.__exit__(exc_type, exc, tb)
        finally:
            _close(block)
