"""The steps a step holds: in its fields, in lists and dicts, in plain pydantic models."""

from __future__ import annotations

import datetime
import decimal
import enum
import typing
import uuid
import weakref
from collections.abc import Iterable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import pydantic

if TYPE_CHECKING:
    from ._step import Step

#: Types whose values never hold a model: a field of one of these is not searched.
_LEAF_TYPES: tuple[type, ...] = (
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    type(None),
    PurePath,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    uuid.UUID,
    enum.Enum,
    np.ndarray,
    np.generic,
)

# Per model class: the names of the fields that may hold a model. Weak, so that a class that
# nothing uses any more (a test's, a script's) is not kept alive by this cache.
_searched_fields: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def may_hold_model(annotation: Any) -> bool:
    """Return whether a field annotated ``annotation`` may hold a pydantic model.

    Only what is certain says no (``float``, ``list[int]``, ``Literal[...]``): ``Any``, an
    unknown class or a bare container may hold one.

    Examples:
        >>> may_hold_model(list[float]), may_hold_model(dict[str, pydantic.BaseModel])
        (False, True)

    """
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return not issubclass(annotation, _LEAF_TYPES)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return False
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return may_hold_model(args[0])
    if origin is None or not args:
        return True  # Any, a type variable, a forward reference: anything may be there
    return any(may_hold_model(arg) for arg in args if arg is not Ellipsis)


def _fields_to_search(cls: type[pydantic.BaseModel]) -> tuple[str, ...]:
    names = _searched_fields.get(cls)
    if names is None:
        names = tuple(
            name
            for name, info in cls.model_fields.items()
            if name != "infra" and may_hold_model(info.annotation)
        )
        _searched_fields[cls] = names
    return names


def _children(model: pydantic.BaseModel) -> Iterable[tuple[str, Any]]:
    for name in _fields_to_search(type(model)):
        yield name, getattr(model, name)
    yield from (model.model_extra or {}).items()


def nested_steps(step: Step) -> list[tuple[str, Step]]:
    """Return the steps ``step`` holds, each with the dotted path it sits at.

    The search goes through the step's fields, into lists, tuples, dicts and plain pydantic
    models, and stops at each step it finds (what that step holds is its own). The cache
    settings (``infra``) hold no step and are not searched.

    Examples:
        >>> from assay_steps import Chain, Func
        >>> chain = Chain(steps=[Func(function="math.sqrt"), Func(function="math.exp")])
        >>> [path for path, _ in nested_steps(chain)]
        ['steps.0', 'steps.1']

    """
    found: list[tuple[str, Step]] = []
    for name, value in _children(step):
        _collect(value, name, found, set())
    return found


def _collect(value: Any, path: str, found: list[tuple[str, Step]], ancestors: set[int]) -> None:
    from ._step import Step

    if isinstance(value, Step):
        found.append((path, value))
        return
    if isinstance(value, pydantic.BaseModel):
        items: Iterable[tuple[Any, Any]] = _children(value)
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return
    if id(value) in ancestors:  # a container holding itself
        return
    ancestors.add(id(value))
    for key, sub in items:
        if not isinstance(sub, _LEAF_TYPES):
            _collect(sub, f"{path}.{key}", found, ancestors)
    ancestors.discard(id(value))


def holds(outer: Step, inner: Step) -> bool:
    """Return whether ``inner`` is ``outer`` or sits anywhere inside it (resolving nothing)."""
    todo = [outer]
    seen: set[int] = set()
    while todo:
        step = todo.pop()
        if step is inner:
            return True
        if id(step) not in seen:
            seen.add(id(step))
            todo.extend(sub for _, sub in nested_steps(step))
    return False


def show_lines(step: Step) -> list[str]:
    """Return the lines of ``step``'s tree: its label, then one branch per step it holds.

    A step that resolves to another (``_resolve_step``) is shown as what it runs as.
    """
    step = step._resolved()
    tree: dict[str, Any] = {}
    for path, sub in nested_steps(step):
        *parents, last = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = sub
    config = _config(step)
    return [_label(step, config, set(tree)), *_branches(tree, config)]


def _config(step: Step) -> Any:
    """Return the configuration of ``step`` without defaults, as JSON where it can be."""
    try:
        return step.model_dump(mode="json", exclude_defaults=True)
    except Exception:  # a value JSON cannot hold (an array): shown as Python shows it
        return step.model_dump(exclude_defaults=True)


def _label(step: Step, config: dict[str, Any], nested: set[str]) -> str:
    """``Class  field=value ...  [Backend, folder, mode]``: the fields not shown as branches."""
    from ._notes import shorten

    skip = {"infra", type(step)._discriminator_key, *nested}
    parts = [type(step).__name__]
    parts += [f"{key}={shorten(repr(value))}" for key, value in config.items() if key not in skip]
    infra = step.infra
    if infra is not None:
        cache = [type(infra).__name__]
        if infra.folder is not None:
            cache.append(str(infra.folder))
        if infra.mode != "cached":
            cache.append(f"mode={infra.mode}")
        parts.append(f"[{', '.join(cache)}]")
    return "  ".join(parts)


def _branches(node: dict[str, Any], config: Any) -> list[str]:
    from ._notes import shorten
    from ._step import Step

    lines: list[str] = []
    by_index = all(key.isdigit() for key in node)  # list positions say nothing: not shown
    for position, (key, value) in enumerate(node.items()):
        last = position == len(node) - 1
        if isinstance(value, Step):
            head, *rest = show_lines(value)
            head = head if by_index else f"{key}: {head}"
        else:
            own = _part(config, key)
            left = _leftover(own, value)
            head = f"{key}  {shorten(repr(left))}" if left else key
            rest = _branches(value, own)
        lines.append(("└── " if last else "├── ") + head)
        lines.extend(("    " if last else "│   ") + line for line in rest)
    return lines


def _part(config: Any, key: str) -> Any:
    if isinstance(config, list) and key.isdigit() and int(key) < len(config):
        return config[int(key)]
    return config.get(key, {}) if isinstance(config, dict) else {}


def _leftover(config: Any, shown: dict[str, Any]) -> Any:
    """Return what a container holds besides the branches shown under it."""
    if isinstance(config, dict):
        return {key: value for key, value in config.items() if key not in shown}
    if isinstance(config, list):
        return [value for index, value in enumerate(config) if str(index) not in shown]
    return None
