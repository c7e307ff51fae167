"""The frozen base, and blocks that keep what they publish to it to themselves.

``param_scope.frozen()`` publishes the current values as the base of the process
(``_state.ROOT_VALUES``): every scope falls back to it, and a plain thread, which starts with an
empty context, sees nothing else. Inside an ``isolated_base()`` block (an operation's run) the
block reads its own copy of the base instead, and what it publishes is withdrawn when the block
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

from ._state import LOCK, ROOT_VALUES, bump, flatten, get_current

if TYPE_CHECKING:
    from ._scope import param_scope


class _Block:
    """One ``isolated_base()`` block: its copy of the base and what it published."""

    __slots__ = ("closed", "published", "view")

    def __init__(self, view: dict[str, Any]) -> None:
        self.view = view  # the base its scopes fall back to: a copy, plus what it published
        self.published: dict[str, Any] = {}  # what it laid over the process base
        self.closed = False


#: The innermost isolated block of this thread or task (copied into ScopedThread, bind_scope).
BLOCK: ContextVar[_Block | None] = ContextVar("assay_scope.block", default=None)

#: The blocks whose publications are in the process base now, the latest publisher last.
_ACTIVE: dict[_Block, None] = {}

#: While ``_ACTIVE`` is not empty: the process base without the blocks' publications.
_BASE: list[dict[str, Any] | None] = [None]


def publish(chain: tuple[dict[str, Any], ...]) -> None:
    """Publish the values of a scope's chain as the base (``param_scope.frozen()``).

    The base the chain falls back to is left out: its values are published already, and the
    shared base also holds what the blocks running now published, which must not outlive them.
    """
    block = BLOCK.get()
    if chain and (chain[-1] is ROOT_VALUES or (block is not None and chain[-1] is block.view)):
        chain = chain[:-1]
    values = flatten(chain)
    with LOCK:
        if block is None:
            base = _BASE[0]
            if base is None:
                ROOT_VALUES.update(values)
            else:  # blocks have published: the base under them changes, they stay on top
                base.update(values)
                _rebuild(base)
        else:
            block.view.update(values)  # the block's own scopes see it, as outside a block
            if not block.closed:  # a thread that outlived its block publishes to it only
                if _BASE[0] is None:
                    _BASE[0] = dict(ROOT_VALUES)
                block.published.update(values)
                _ACTIVE.pop(block, None)
                _ACTIVE[block] = None
                ROOT_VALUES.update(values)
        bump()


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
            bump()


def _rebuild(base: dict[str, Any]) -> None:
    """Make the process base ``base`` with every active block's publication over it (LOCK held).

    Changed in place (scopes hold the dict itself), and so that a key kept is never missing
    for a reader in another thread meanwhile.
    """
    merged = dict(base)
    for block in _ACTIVE:
        merged.update(block.published)
    for key in [key for key in ROOT_VALUES if key not in merged]:
        del ROOT_VALUES[key]
    ROOT_VALUES.update(merged)


@functools.cache
def _scope_api() -> tuple[Any, Any, Any, type[param_scope]]:
    # Imported on first use, once: _scope imports this module for param_scope.frozen(). An
    # import statement run on every entry costs a look through the import system.
    from ._scope import _CHAIN, _OWN, _PREV, param_scope

    return _CHAIN, _OWN, _PREV, param_scope


class isolated_base:
    """A block that keeps what ``param_scope.frozen()`` publishes inside it to itself.

    Inside the block, scopes fall back to the block's own copy of the frozen base (the base of
    the process, or of the enclosing block, as it was on entering), so values that other
    blocks publish meanwhile, in other threads, are not seen. ``param_scope.frozen()`` inside
    the block still publishes: the block's scopes see the values after the scopes that set
    them are left, threads that carry the block's context (``ScopedThread``, ``bind_scope``)
    see them, and so do plain threads started while the block runs. When the block ends,
    however it ends (an exception, ``SystemExit``, ``KeyboardInterrupt``), what it published is
    withdrawn and the base is what it would be had the block never run; values published
    meanwhile outside any block stay. ``OperationWrapper.run`` runs every operation in one.

    A plain thread reads the base of the whole process, not a block's copy: started while two
    blocks publish at the same time, it sees what both published (the later one where both set
    a key). Threads started with ``ScopedThread`` or ``bind_scope`` see their own block's base
    only. A plain thread that calls ``frozen()`` publishes outside any block: that stays.

    Entering the block returns its scope, which is empty and current inside it; an instance is
    entered once at a time.

    Example:
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
        set_chain, set_own, set_prev, scope_class = _scope_api()
        if self._block is not None:
            raise RuntimeError("this isolated_base() block is already entered")
        outer = BLOCK.get()
        current = get_current()
        chain: tuple[dict[str, Any], ...] = current._chain
        with LOCK:  # a consistent copy: other threads publish under the lock
            if outer is not None:
                view = dict(outer.view)
            else:
                base = _BASE[0]
                view = dict(ROOT_VALUES if base is None else base)
        # Scopes fall back to the block's copy instead of the shared base (a detached scope
        # falls back to nothing, and stays so).
        tail = chain[-1]
        if tail is ROOT_VALUES or (outer is not None and tail is outer.view):
            chain = (*chain[:-1], view)
        scope: param_scope = object.__new__(scope_class)
        own: dict[str, Any] = {}
        set_own(scope, own)
        set_prev(scope, current)
        set_chain(scope, (own, *chain))
        block = _Block(view)
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
