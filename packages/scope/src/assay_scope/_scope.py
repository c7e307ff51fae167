"""``param_scope``: nested, thread- and task-local scopes of hyperparameters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from ._accessor import Accessor, CurrentAccessor
from ._base import publish
from ._errors import MissingParameterError
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

# Class-level accessors (``param_scope.lr``) do not depend on the scope, so one per name is kept.
_DYNAMIC: dict[str, CurrentAccessor] = {}


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _private_read(name: str, where: str) -> str:
    """Return the message of a read of ``ps._name``: such names stay Python's protocols'."""
    return (
        f"{name!r}: a name starting with '_' is not read as a parameter in attribute syntax "
        f"(copy, pickle and notebooks probe such names); read the key as {where}[{name!r}]"
    )


class _ScopeType(type):
    """Metaclass giving the class itself ``param_scope.x | 1`` and ``param_scope.x = 1``."""

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

    Example:
        >>> with param_scope(lr=0.1, **{"model.width": 64}) as ps:
        ...     ps.lr(), ps.model.width(), param_scope.epochs | 10
        (0.1, 64, 10)
        >>> with param_scope("train.epochs=3"):
        ...     param_scope.train.epochs(10)
        3

    """

    # Internal state in slots, set through the slot descriptors (_OWN, _PREV, ...) because
    # __setattr__ writes parameters. Accessors are cached in the instance __dict__.
    __slots__ = ("__dict__", "_chain", "_own", "_owner", "_prev")
    _own: dict[str, Any]  # this scope's values (shared with the nodes pushed when re-entered)
    _chain: tuple[dict[str, Any], ...]  # _own, then the values of every enclosing scope (lazy)
    _prev: Any  # the scope current at creation (None: detached, see empty())
    _owner: param_scope | None  # for a pushed node: the scope it was entered for

    def __init__(self, *args: str, **kwargs: Any) -> None:
        own = kwargs
        if args:
            own = _from_strings(args, kwargs)
        else:
            for value in kwargs.values():
                if type(value) is dict:
                    own = _flat_items(kwargs)
                    break
        _OWN(self, own)
        # The scope current at creation: reads before entering go through it, and entering
        # where it is still current needs no extra object. The chain is built at the first read.
        _PREV(self, get_current())

    # ------------------------------------------------------------------ entering and leaving

    def __enter__(self) -> param_scope:
        current = get_current()
        if current is self._prev:
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
            set_current(self._prev)
            return
        # A scope entered inside this one was never left (param_scope.init does that):
        # unwind to this scope's entry.
        while current is not None:
            if current is self or current._owner is self:
                set_current(current._prev)
                return
            current = current._prev
        raise RuntimeError(f"{self!r} is left but it is not entered in this thread or task")

    def _node(self, current: Any) -> param_scope:
        node: param_scope = object.__new__(param_scope)
        _OWN(node, self._own)
        _PREV(node, current)
        _CHAIN(node, (self._own,) if self._prev is None else (self._own, *current._chain))
        _OWNER(node, self)
        return node

    def _writable(self) -> param_scope:
        return self

    @classmethod
    def _context_root(cls) -> param_scope:
        """Create and enter, for good, a scope local to this thread or task (top-level writes)."""
        scope: param_scope = object.__new__(cls)
        _OWN(scope, {})
        _PREV(scope, ROOT)
        set_current(scope)
        return scope

    # ------------------------------------------------------------------ reading

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            if name == "_chain":  # built on first use, so that creating a scope stays cheap
                prev = self._prev
                chain = (self._own,) if prev is None else (self._own, *prev._chain)
                _CHAIN(self, chain)
                return chain
            if name == "_owner":
                return None
            raise AttributeError(_private_read(name, "ps"))
        # Cached in the instance dict: the next ``ps.name`` is a plain attribute hit.
        accessor = self.__dict__[name] = Accessor(self, name)
        return accessor

    def __call__(self) -> Accessor:
        """Return the root accessor: ``ps().lr()`` is ``ps.lr()``."""
        return Accessor(self, "")

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
        # The internal slots are set through their descriptors; any other name but a dunder
        # is a parameter (``ps._secret = 1``), as in the reference.
        if _is_dunder(name) or name in _SLOTS:
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
        with LOCK:
            self._own.update(items)
            bump()
        return self

    def clear(self) -> param_scope:
        """Remove this scope's own values (enclosing scopes are untouched); return the scope."""
        with LOCK:
            self._own.clear()
            bump()
        return self

    def __repr__(self) -> str:
        return f"param_scope({self._own!r})"

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

        Example:
            >>> with param_scope(a="not empty"):
            ...     param_scope.a("empty")
            ...     with param_scope.empty():
            ...         param_scope.a("empty")
            'not empty'
            'empty'

        """
        scope = param_scope(*args, **kwargs)
        _PREV(scope, None)  # detached: entering it never chains to the current scope
        return scope

    @staticmethod
    def current() -> param_scope:
        """Return the innermost scope of this thread or task; writes to it are seen at once.

        Example:
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

        Example:
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

        Inside an ``isolated_base()`` block (every operation's run is one), what it publishes
        is withdrawn when the block ends.

        Example:
            >>> import threading
            >>> with param_scope(seed=7):
            ...     param_scope.frozen()
            >>> seen = []
            >>> thread = threading.Thread(target=lambda: seen.append(param_scope.seed(0)))
            >>> thread.start(); thread.join()
            >>> seen
            [7]

        """
        publish(get_current()._chain)

    @staticmethod
    def record() -> Recording:
        """Record the parameters read inside a ``with`` block; yields a ``Record``.

        Example:
            >>> with param_scope(lr=0.1), param_scope.record() as used:
            ...     _ = param_scope.lr | 0.01
            >>> dict(used)
            {'lr': 0.1}

        """
        return Recording()


def _unpickle_scope(values: dict[str, Any]) -> param_scope:
    """Rebuild a pickled scope: detached, with the values it saw where it was pickled."""
    return param_scope.empty(**values)


_SLOTS = frozenset(param_scope.__slots__)
_OWN = vars(param_scope)["_own"].__set__
_PREV = vars(param_scope)["_prev"].__set__
_CHAIN = vars(param_scope)["_chain"].__set__
_OWNER = vars(param_scope)["_owner"].__set__


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


def _flat_items(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts of str keys into dotted keys; other values are kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise TypeError(
                f"param_scope key {key!r} (under {prefix!r}) is a {type(key).__name__}, "
                "expected a str"
            )
        name = f"{prefix}.{key}" if prefix else key
        if type(value) is dict and value and all(isinstance(k, str) for k in value):
            flat.update(_flat_items(value, name))
        else:
            flat[name] = value
    return flat


def _from_strings(args: tuple[str, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Merge ``"key=value"`` strings (split on the first ``=``) with keyword values."""
    own = _flat_items(kwargs)
    for text in args:
        if not isinstance(text, str) or "=" not in text:
            raise ValueError(
                f"param_scope argument {text!r} is not a 'key=value' string "
                "(pass values as keywords: param_scope(key=value))"
            )
        key, value = text.split("=", 1)
        if not key.strip():
            raise ValueError(f"param_scope argument {text!r} has an empty key before '='")
        own[key.strip()] = value
    return own
