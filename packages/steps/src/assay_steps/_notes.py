"""Notes that errors carry about the step that raised them."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._step import Step

#: Longest rendering of one field value in a step's label (the middle is cut).
_MAX_VALUE = 40


def shorten(text: str, limit: int = _MAX_VALUE) -> str:
    """Cut the middle of ``text`` down to ``limit`` characters, keeping both ends.

    Examples:
        >>> shorten("model.layers.attention.heads", 20)
        'model.la...ion.heads'

    """
    if len(text) <= limit:
        return text
    head = (limit - 3) // 2
    return f"{text[:head]}...{text[head - limit + 3 :]}"


def _differs(value: Any, default: Any) -> bool:
    try:
        return not (type(value) is type(default) and bool(value == default))
    except Exception:  # e.g. arrays: no truth value
        return True


def field_values(step: Step) -> list[tuple[str, Any]]:
    """Return the fields of ``step`` that differ from their default (``infra`` aside)."""
    values = [
        (name, getattr(step, name))
        for name, info in type(step).model_fields.items()
        if name != "infra"
        and (info.default_factory is not None or _differs(getattr(step, name), info.default))
    ]
    return values + list((step.model_extra or {}).items())


def step_label(step: Step) -> str:
    """Return ``Class(field=value, ...)`` with the fields that differ from their default.

    Examples:
        >>> from assay_steps import Func
        >>> step_label(Func(function="math.pow", input_param="x", y=2))
        "Func(function=math.pow, input_param='x', y=2)"

    """
    fields = ", ".join(f"{name}={shorten(_repr(value))}" for name, value in field_values(step))
    return f"{type(step).__name__}({fields})"


def _repr(value: Any) -> str:
    if inspect.isroutine(value) or inspect.isclass(value):  # by name, not by address
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not hide the error being reported
        return f"<{type(value).__name__}>"


def add_note(error: BaseException, note: str) -> None:
    """Add ``note`` to ``error`` once (Python 3.11+; earlier versions show no notes)."""
    if hasattr(error, "add_note") and note not in getattr(error, "__notes__", ()):
        error.add_note(note)


def noted(step: Step, results: Iterator[Any]) -> Iterator[Any]:
    """Pass ``results`` on; an error raised while computing them gets a note naming ``step``."""
    try:
        yield from results
    except Exception as error:
        add_note(error, f"  -> in {step_label(step)}")
        raise
