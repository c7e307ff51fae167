"""``auto_param``: a function's or class's defaulted parameters read from the current scope."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar, overload

from . import _state
from ._convert import convert
from ._errors import ConversionError
from ._state import note

F = TypeVar("F", bound=Callable[..., Any])

# A parameter that can only be passed by keyword is never covered by a positional argument.
_KEYWORD_ONLY = sys.maxsize


class _Fill:
    """One defaulted parameter: its name, scope key, default and positional index."""

    __slots__ = ("default", "key", "name", "position")

    def __init__(self, name: str, key: str, default: Any, position: int) -> None:
        self.name = name
        self.key = key
        self.default = default
        self.position = position


class _Cache:
    """The values one wrapper found in one scope: ``(scope, version, values)``.

    A wrapper sent by value to another process (cloudpickle does that for a script's or a
    notebook's functions) arrives with an empty cache: the scope it last resolved in belongs
    to this process, and may hold values that cannot be pickled.
    """

    __slots__ = ("entry",)

    def __init__(self) -> None:
        self.entry: tuple[Any, int, tuple[tuple[str, int, Any], ...]] = (None, -1, ())

    def __reduce__(self) -> tuple[type[_Cache], tuple[()]]:
        return (_Cache, ())


class _Failed:
    """A scope value that did not convert; raised only if the call would have used it."""

    __slots__ = ("error",)

    def __init__(self, error: ConversionError) -> None:
        self.error = error


@overload
def auto_param(name_or_func: F) -> F: ...


@overload
def auto_param(name_or_func: str | None = None) -> Callable[[F], F]: ...


def auto_param(name_or_func: Any = None) -> Any:
    """Let the current scope supply a function's (or class's) defaulted parameters.

    Each defaulted parameter ``p`` of ``f`` is read from the scope key ``<namespace>.p``; the
    namespace is the function or class name, or the dotted string given. Explicit arguments
    (positional or keyword) beat scope values; scope values beat defaults and are converted to
    the default's type. Decorating a class wraps its ``__init__`` and returns the class itself.

    Args:
        name_or_func: the function or class to decorate, or a namespace string.

    Returns:
        The wrapped function, the class, or a decorator when given a namespace.

    Examples:
        >>> from assay_scope import param_scope
        >>> @auto_param("train")
        ... def fit(data, lr=0.1, epochs=10):
        ...     return data, lr, epochs
        >>> with param_scope("train.epochs=3", **{"train.lr": 0.5}):
        ...     fit("d"), fit("d", 0.01)
        (('d', 0.5, 3), ('d', 0.01, 3))

    """
    if callable(name_or_func):
        return _decorate(name_or_func, None)
    if name_or_func is not None and not isinstance(name_or_func, str):
        raise TypeError(
            f"auto_param expects a function, a class or a namespace string, got {name_or_func!r}"
        )
    return functools.partial(_decorate, namespace=name_or_func)


def _decorate(target: Any, namespace: str | None) -> Any:
    if namespace is None:
        namespace = getattr(target, "__name__", None)
        if not isinstance(namespace, str) or namespace == "<lambda>":
            raise ValueError(
                f"auto_param cannot name a namespace after {target!r}: "
                'give one, as in auto_param("train")(func)'
            )
    if not namespace or any(not part for part in namespace.split(".")):
        raise ValueError(f"auto_param namespace {namespace!r} is not a dotted name")
    if isinstance(target, type):
        # Wrap __init__ in place: the class stays a class (isinstance, subclassing keep working).
        target.__init__ = _wrap(target.__init__, namespace)  # type: ignore[misc]
        target._auto_param_namespace = namespace  # type: ignore[attr-defined]
        return target
    wrapper = _wrap(target, namespace)
    wrapper._auto_param_wrapped = target  # type: ignore[attr-defined]
    return wrapper


def _fills(func: Callable[..., Any], namespace: str) -> tuple[_Fill, ...]:
    fills = []
    for index, param in enumerate(inspect.signature(func).parameters.values()):
        # Positional-only parameters cannot be passed by keyword, so the scope cannot set them.
        if param.default is param.empty or param.kind is param.POSITIONAL_ONLY:
            continue
        position = index if param.kind is param.POSITIONAL_OR_KEYWORD else _KEYWORD_ONLY
        fills.append(_Fill(param.name, f"{namespace}.{param.name}", param.default, position))
    return tuple(fills)


def _wrap(func: Callable[..., Any], namespace: str) -> Callable[..., Any]:
    fills = _fills(func, namespace)
    # (scope, version, values found in it): valid while the same scope is current and nothing
    # was written anywhere; replaced as a whole, so threads never see half an update.
    cache = _Cache()
    # The shared state is reached through its module (``_state.VERSION``, not a name imported
    # from it): a copy of these closures sent by value then uses the state of the process it
    # runs in, not a frozen copy of the counters (or a ContextVar, which cannot be pickled).

    def resolve(scope: Any) -> tuple[tuple[str, int, Any], ...]:
        version = _state.VERSION[0]  # read first: a write during the look-up invalidates it
        found = []
        for fill in fills:
            for values in scope._chain:
                if fill.key in values:
                    value = values[fill.key]
                    try:
                        value = convert(fill.key, value, fill.default)
                    except ConversionError as error:
                        value = _Failed(error)
                    found.append((fill.name, fill.position, value))
                    break
        result = tuple(found)
        cache.entry = (scope, version, result)
        return result

    def record(args: tuple[Any, ...], kwargs: dict[str, Any], found: Any) -> None:
        supplied = {name: value for name, _, value in found}
        for fill in fills:
            if fill.position < len(args) or fill.name in kwargs:
                continue  # explicit arguments are not read from the scope
            if fill.name in supplied:
                note(fill.key, supplied[fill.name], False)
            else:
                note(fill.key, fill.default, True)

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        scope = _state.get_current()
        cached = cache.entry
        if cached[0] is scope and cached[1] == _state.VERSION[0]:
            found = cached[2]
        else:
            if scope is _state.ROOT:  # never cached: the first read pins the base first
                scope = _state.pin()
            found = resolve(scope)
        if _state.RECORDING[0]:
            record(args, kwargs, found)
        if found:
            given = len(args)
            for name, position, value in found:
                if position >= given and name not in kwargs:
                    if type(value) is _Failed:
                        raise value.error
                    kwargs[name] = value
        return func(*args, **kwargs)

    inner._auto_param_namespace = namespace  # type: ignore[attr-defined]
    return inner
