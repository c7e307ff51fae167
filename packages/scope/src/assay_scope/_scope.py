"""``param_scope``: nested, thread- and task-local scopes of hyperparameters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from ._accessor import Accessor, CurrentAccessor, bound_accessor
from ._base import publish
from ._errors import MissingParameterError
from ._keys import _flat_items, _from_strings, _is_dunder, _nested, _private_read
from ._record import Recording
from ._state import (
    LOCK,
    RECORDING,
    ROOT,
    bump,
    flatten,
    get_current,
    note,
    set_current,
)
from ._storage import ScopeStorage

# Class-level accessors (``param_scope.lr``) do not depend on the scope, so one per name is kept.
_DYNAMIC: dict[str, CurrentAccessor] = {}


class _Chain:
    """The chain of a scope (its own values, then each enclosing scope's), built on first use.

    A non-data descriptor: once built, the chain sits in the instance dict and is found there
    directly. (A fallback through ``__getattr__`` would cost an AttributeError built and
    dropped on each first read.)
    """

    def __get__(self, scope: Any, owner: Any = None) -> Any:
        if scope is None:
            return self
        own, prev = scope._s
        if _nested(own):
            with LOCK:  # one flat dict, whichever thread builds the chain first
                own, prev = scope._s
                if _nested(own):
                    own = _flat_items(own)
                    _S(scope, (own, prev))
        chain = (own,) if prev is None else (own, *prev._chain)
        scope.__dict__["_chain"] = chain
        return chain


class _ScopeType(type):
    """Metaclass giving the class itself ``param_scope.x | 1`` and ``param_scope.x = 1``."""

    def __getattribute__(cls, name: str) -> Any:
        # The accessors of class-level reads are looked up first: a name that is not an
        # attribute of the class would otherwise fail the look-up, and Python 3.11 builds and
        # drops an AttributeError each time before it calls __getattr__. (Names in _DYNAMIC
        # are never param_scope's own: they are added only when it has no such name; a
        # subclass may define them.)
        accessor = _DYNAMIC.get(name)
        if accessor is not None and cls is param_scope:
            return accessor
        return type.__getattribute__(cls, name)

    def __getattr__(cls, name: str) -> CurrentAccessor:
        if name.startswith("_"):
            raise AttributeError(_private_read(name, "param_scope.current()"))
        accessor = _DYNAMIC.get(name)
        if accessor is None:
            accessor = _DYNAMIC[name] = CurrentAccessor(None, name)
        return accessor

    def __setattr__(cls, name: str, value: Any) -> None:
        # Only dunders and existing class attributes are Python's: ``param_scope._seed = 1``
        # is a parameter, as in the reference, not a class attribute every scope would see.
        if _is_dunder(name) or name in cls.__dict__:
            type.__setattr__(cls, name, value)
        else:
            get_current()._writable().put(name, value)


class param_scope(metaclass=_ScopeType):
    """A scope of hyperparameters: create it with values, enter it with ``with``.

    Inside ``with param_scope(lr=0.1):`` every read of ``lr`` (``param_scope.lr | 0.01``, an
    ``auto_param`` function, a scope created inside) sees 0.1; leaving the block restores exactly
    the outer values, also when an exception leaves it. Scopes nest, inner values win. A scope
    that is created but never entered changes nothing.

    Values are per thread and per asyncio task (they live in a ``contextvars.ContextVar``):
    concurrent tasks in their own scopes never see each other's values. A new thread starts
    from the base published by ``param_scope.frozen()``; to run a thread or a pool task inside
    the current scope, use ``ScopedThread``, ``bind_scope`` or ``contextvars.copy_context().run``.

    Args:
        *args: ``"key=value"`` strings (split on the first ``=``; the value stays a string and
            is converted when read with a default), as a command line gives them.
        **kwargs: values; nested dicts are flattened to dotted keys (``model={"width": 8}`` is
            ``model.width``), so ``param_scope(**{"a.b": 1})`` and ``param_scope(a={"b": 1})``
            are the same.

    Examples:
        >>> with param_scope(lr=0.1, **{"model.width": 64}) as ps:
        ...     ps.lr(), ps.model.width(), param_scope.epochs | 10
        (0.1, 64, 10)
        >>> with param_scope("train.epochs=3"):
        ...     param_scope.train.epochs(10)
        3

    """

    # Internal state: ``_s`` is the pair (own values, scope current at creation), set through
    # its slot descriptor because __setattr__ writes parameters; one store, because every
    # store on a class that overrides __setattr__ is a call. The chain of values (``_chain``)
    # and, for a pushed node, the scope it was entered for (``_owner``) are kept in the
    # instance dict, with the accessors, when they are first needed.
    #
    # Creating and entering a scope do no work on its values: the chain is built at the first
    # read (or write), and a nested dict given as a value is flattened into dotted keys then.
    __slots__ = ("__dict__", "_s")
    _s: tuple[dict[str, Any], Any]
    _chain = _Chain()
    _owner: param_scope | None = None

    def __init__(self, *args: str, **kwargs: Any) -> None:
        # The scope current at creation: reads before entering go through it, and entering
        # where it is still current needs no extra object. At the top of a thread or task,
        # the scope pins the frozen base of the moment.
        prev = get_current()
        if prev is ROOT:
            prev = ROOT._pinned
        _S(self, (_from_strings(args, kwargs) if args else kwargs, prev))

    # ------------------------------------------------------------------ entering and leaving

    def __enter__(self) -> param_scope:
        current = get_current()
        prev = self._s[1]
        if current is prev or (current is ROOT and prev is ROOT._pinned):
            set_current(self)
            return self
        # Entered somewhere else than where it was created (or re-entered, or detached):
        # push a node that shares this scope's values but chains to the current scope.
        node = self._node(current)
        set_current(node)
        return node

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        current = get_current()
        if current is self:
            set_current(self._s[1])
            return
        # A scope entered inside this one was never left (param_scope.init does that):
        # unwind to this scope's entry.
        while current is not None:
            if current is self or current._owner is self:
                set_current(current._s[1])
                return
            current = current._s[1]
        raise RuntimeError(f"{self!r} is left but it is not entered in this thread or task")

    def _node(self, current: Any) -> param_scope:
        _ = self._chain  # built first: it flattens the values the node shares
        own, prev = self._s
        if current is ROOT:
            current = ROOT._pinned
        node: param_scope = object.__new__(param_scope)
        _S(node, (own, current))
        state = node.__dict__
        state["_chain"] = (own,) if prev is None else (own, *current._chain)
        state["_owner"] = self
        return node

    def _writable(self) -> param_scope:
        return self

    @classmethod
    def _context_root(cls, root: Any) -> param_scope:
        """Create and enter, for good, a scope local to this thread or task (top-level writes)."""
        scope: param_scope = object.__new__(cls)
        _S(scope, ({}, root))
        set_current(scope)
        return scope

    # ------------------------------------------------------------------ reading

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(_private_read(name, "ps"))
        # Cached in the instance dict: the next ``ps.name`` is a plain attribute hit.
        accessor = self.__dict__[name] = bound_accessor(self, name)
        return accessor

    def __call__(self) -> Accessor:
        """Return the root accessor: ``ps().lr()`` is ``ps.lr()``."""
        return bound_accessor(self, "")

    def __getitem__(self, key: str) -> Any:
        """Return the value of a dotted key as stored (no conversion).

        Raises:
            MissingParameterError: no enclosing scope sets the key.

        """
        for values in self._chain:
            if key in values:
                value = values[key]
                if RECORDING[0]:
                    note(key, value, False)
                return value
        raise MissingParameterError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of a dotted key as stored, or ``default`` (no conversion)."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return any(key in values for values in self._chain)

    def keys(self) -> list[str]:
        """Return every key visible in this scope, outer ones first."""
        return list(flatten(self._chain))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(flatten(self._chain))

    def storage(self) -> ScopeStorage:
        """Return the storage view of the reference API: ``ps.storage().storage()`` is a dict."""
        return ScopeStorage(self)

    # ------------------------------------------------------------------ writing

    def __setattr__(self, name: str, value: Any) -> None:
        # The internal state is set through its descriptor and the instance dict; any name
        # but a dunder is a parameter (``ps._secret = 1``), as in the reference.
        if _is_dunder(name):
            object.__setattr__(self, name, value)
        else:
            self.put(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        self.put(key, value)

    def put(self, key: str, value: Any) -> None:
        """Set ``key`` (dotted) to ``value`` in this scope; a dict value sets dotted sub-keys."""
        if not isinstance(key, str):
            raise TypeError(f"param_scope key {key!r} is a {type(key).__name__}, expected a str")
        self.update({key: value})

    def update(self, values: Mapping[str, Any]) -> param_scope:
        """Set several keys in this scope (nested dicts become dotted keys); return the scope."""
        if not isinstance(values, Mapping):
            raise TypeError(
                f"param_scope.update({values!r}): expected a mapping from str keys to values"
            )
        items = _flat_items(values)
        _ = self._chain  # built first: it flattens the values given at creation
        with LOCK:
            self._s[0].update(items)
            bump()
        return self

    def clear(self) -> param_scope:
        """Remove this scope's own values (enclosing scopes are untouched); return the scope."""
        _ = self._chain  # built first: it flattens the values given at creation
        with LOCK:
            self._s[0].clear()
            bump()
        return self

    def __repr__(self) -> str:
        _ = self._chain  # built first: it flattens the values given at creation
        return f"param_scope({self._s[0]!r})"

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # Another process has its own scopes: a pickled scope arrives as a detached scope
        # holding every value it saw (its own and the enclosing ones). Rebuilt through
        # __init__, since the default slot-by-slot restore cannot order the accessors cached
        # in the instance dict after the slots they read.
        return (_unpickle_scope, (flatten(self._chain),))

    # ------------------------------------------------------------------ the reference's statics

    @staticmethod
    def empty(*args: str, **kwargs: Any) -> param_scope:
        """Create a scope that sees none of the enclosing values, only its own.

        Examples:
            >>> with param_scope(a="not empty"):
            ...     param_scope.a("empty")
            ...     with param_scope.empty():
            ...         param_scope.a("empty")
            'not empty'
            'empty'

        """
        scope = param_scope(*args, **kwargs)
        _S(scope, (scope._s[0], None))  # detached: entering it never chains to the current scope
        return scope

    @staticmethod
    def current() -> param_scope:
        """Return the innermost scope of this thread or task; writes to it are seen at once.

        Examples:
            >>> with param_scope(), param_scope(a=1):
            ...     param_scope.current().a = 2
            ...     param_scope.a("empty")
            '2'

        """
        scope: param_scope = get_current()._writable()
        return scope

    @staticmethod
    def init(params: Mapping[str, Any] | None = None) -> None:
        """Enter, for the rest of this thread or task, a scope holding ``params``.

        Examples:
            >>> import threading
            >>> seen = []
            >>> def worker():
            ...     param_scope.init({"lr": 0.5})
            ...     seen.append(param_scope.lr(0.1))
            >>> thread = threading.Thread(target=worker)
            >>> thread.start(); thread.join()
            >>> seen
            [0.5]

        """
        if params is None:
            params = {}
        # Checked here: dict() and ** would fail with messages naming neither the call nor
        # what it expects ("dictionary update sequence element #0...").
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise TypeError(
                f"param_scope.init(params={params!r}): expected a mapping from str keys "
                "(dotted names such as 'model.width') to values, or None"
            )
        param_scope(**params).__enter__()

    @staticmethod
    def frozen() -> None:
        """Publish the current values as the base that every thread started later sees.

        Threads started later, threads and tasks at their first use of a scope, and
        ``isolated_base()`` blocks (operations' runs) started later start from the published
        values. The caller keeps what it sees, as do threads and tasks already at work: once
        it leaves the scopes that set the values, they are gone for it (hyperparameter behaves
        the same: each thread keeps the copy of the base it made at its first use). Inside an
        ``isolated_base()`` block, what it publishes is withdrawn when the block ends.

        Examples:
            >>> import threading
            >>> def read_in_a_new_thread():
            ...     seen = []
            ...     thread = threading.Thread(target=lambda: seen.append(param_scope.seed(0)))
            ...     thread.start(); thread.join()
            ...     return seen[0]
            >>> with param_scope(seed=7):
            ...     param_scope.frozen()
            >>> read_in_a_new_thread(), param_scope.seed(0)
            (7, 0)

        """
        publish(get_current()._chain)

    @staticmethod
    def record() -> Recording:
        """Record the parameters read inside a ``with`` block; yields a ``Record``.

        Examples:
            >>> with param_scope(lr=0.1), param_scope.record() as used:
            ...     _ = param_scope.lr | 0.01
            >>> dict(used)
            {'lr': 0.1}

        """
        return Recording()


def _unpickle_scope(values: dict[str, Any]) -> param_scope:
    """Rebuild a pickled scope: detached, with the values it saw where it was pickled."""
    return param_scope.empty(**values)


_S = vars(param_scope)["_s"].__set__
