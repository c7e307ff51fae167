"""Dumping a model by its own class, with a key naming that class, under pydantic's options."""

from __future__ import annotations

import contextvars
from typing import Any

import pydantic

# The model being dumped through its own class's serializer right now (see dump_tagged).
_own_class_dump: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "assay_steps_own_class_dump", default=None
)

# Options of ``to_python`` that older pydantic versions lack: passed on only when set.
_OPTIONAL: dict[str, Any] = {
    "context": None,
    "serialize_as_any": False,
    "exclude_computed_fields": False,
}


def dump_tagged(
    model: pydantic.BaseModel,
    handler: pydantic.SerializerFunctionWrapHandler,
    info: pydantic.SerializationInfo,
    key: str,
    name: str,
) -> Any:
    """Dump ``model`` with its own class's fields, the options of the call, and ``key: name``.

    A field typed with a base class (``infra: Backend``, ``pipeline: Step``) holding a
    subclass instance is dumped by pydantic with the base class's fields only. So ``model``
    is dumped once more through its own class's serializer, with every option of the
    current call (``include``, ``exclude``, ``exclude_defaults``, ``exclude_none``,
    ``exclude_unset``, ...); that inner call, recognised here, takes pydantic's own path.
    ``key`` always comes first: it is what validates the dump back to the class.
    """
    if _own_class_dump.get() is model:
        return {key: name, **handler(model)}
    options: dict[str, Any] = {
        "mode": info.mode,
        "include": info.include,
        "exclude": info.exclude,
        "by_alias": bool(info.by_alias),
        "exclude_unset": info.exclude_unset,
        "exclude_defaults": info.exclude_defaults,
        "exclude_none": info.exclude_none,
        "round_trip": info.round_trip,
    }
    for option, default in _OPTIONAL.items():
        value = getattr(info, option, default)
        if value != default:
            options[option] = value
    token = _own_class_dump.set(model)
    try:
        return type(model).__pydantic_serializer__.to_python(model, **options)
    finally:
        _own_class_dump.reset(token)
