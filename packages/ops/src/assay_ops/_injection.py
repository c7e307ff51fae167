"""What an operation may ask for, and the values it is given when it runs.

An operation's parameters name the run values it receives among ``context``, ``params``,
``seeds``, ``runtime`` and ``capture``: the names are checked when the function is decorated,
the values when the operation runs, and each run hands the function the ones it asked for.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from assay_context import FrozenContext

from ._capture import Capture
from ._runtime import Runtime
from ._seeds import SeedBundle

#: The names an operation's parameters may have; each receives the value of that name.
INJECTABLE = ("context", "params", "seeds", "runtime", "capture")


def _injected(func: Callable[..., Any], name: str) -> tuple[str, ...]:
    """Validate ``func``'s signature at decoration time; return the names it asks for."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"operation {name!r}: cannot read the signature of {func!r} ({err})"
        ) from err
    if inspect.iscoroutinefunction(func):
        raise TypeError(
            f"operation {name!r}: {func!r} is a coroutine function; operations are plain "
            "functions (call asyncio.run(...) inside one to run async code)"
        )
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        # Calling one only creates a generator: the body would never run, yet the run
        # would be recorded as a success.
        raise TypeError(
            f"operation {name!r}: {func!r} is a generator function, whose body runs only when "
            "the generator is iterated; operations are plain functions (record results with "
            "capture.metric or capture.artifact instead of yielding them)"
        )
    asked = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ValueError(
                f"operation {name!r}: parameter {parameter}: ask for the values by name; "
                f"expected parameters among {INJECTABLE}"
            )
        if parameter.name not in INJECTABLE:
            raise ValueError(
                f"operation {name!r}: parameter {parameter.name!r} cannot be injected; "
                f"expected parameters among {INJECTABLE} (any subset, any order)"
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ValueError(
                f"operation {name!r}: parameter {parameter.name!r} is positional-only; "
                "values are passed by name, so drop the '/' from the signature"
            )
        asked.append(parameter.name)
    return tuple(asked)


def _check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params={params!r}: expected a mapping from str keys to values")
    for key in params:
        if not isinstance(key, str):
            raise TypeError(f"params key {key!r} has type {type(key).__name__}; expected a str")
    return dict(params)


def _check_types(seeds: Any, runtime: Any, capture: Any, run_id: Any) -> None:
    for name, value, cls in (
        ("seeds", seeds, SeedBundle),
        ("runtime", runtime, Runtime),
        ("capture", capture, Capture),
    ):
        if value is not None and not isinstance(value, cls):
            raise TypeError(
                f"{name}={value!r} of type {type(value).__qualname__}: expected a "
                f"{cls.__name__} or None"
            )
    if run_id is not None and (not isinstance(run_id, str) or not run_id):
        raise ValueError(f"run_id={run_id!r}: expected a non-empty string or None")


def _context_view(context: Any) -> FrozenContext:
    """Return a per-run child of ``context`` (a plain mapping is frozen into a context first)."""
    if context is None:
        return FrozenContext({})
    if isinstance(context, FrozenContext):
        return context.child()
    if isinstance(context, Mapping):
        return FrozenContext(context)
    raise TypeError(
        f"context={context!r} of type {type(context).__qualname__}: expected a FrozenContext "
        "(or a mapping to freeze into one), or None"
    )


def _arguments(
    asked: tuple[str, ...],
    context: FrozenContext | Mapping[str, Any] | None,
    params: dict[str, Any],
    seeds: SeedBundle,
    runtime: Runtime,
    capture: Capture,
) -> dict[str, Any]:
    """Return the keyword arguments of one run: the values the function ``asked`` for."""
    kwargs: dict[str, Any] = {}
    for name in asked:
        if name == "context":
            # A per-run child: it can add keys, never change the shared context, and what
            # it records goes to this run's capture.
            view = _context_view(context)
            view.metrics, view.artifacts = capture.metrics, capture.artifacts
            kwargs[name] = view
        elif name == "params":
            # A copy: an operation that changes its params cannot change the record's.
            kwargs[name] = dict(params)
        elif name == "seeds":
            kwargs[name] = seeds
        elif name == "runtime":
            kwargs[name] = runtime
        else:
            kwargs[name] = capture
    return kwargs
