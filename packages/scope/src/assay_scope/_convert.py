"""Conversion of a stored value to the type of the default it is read with."""

from __future__ import annotations

from typing import Any

from ._errors import ConversionError

# The spellings a command line or a config file uses for booleans (the reference's list).
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})


def convert(key: str, value: Any, default: Any) -> Any:
    """Return ``value`` converted to ``type(default)``; raise ``ConversionError`` if it cannot be.

    Only bool, int, float and str defaults convert; any other default (None, lists, objects)
    returns the value unchanged. A stored None is never converted: it means "set to None".

    Examples:
        >>> convert("epochs", "3", 10), convert("lr", "0.5", 0.1), convert("amp", "yes", False)
        (3, 0.5, True)

    """
    kind = type(default)
    if value is None or default is None or type(value) is kind:
        return value
    if kind is bool:
        return _to_bool(key, value, default)
    if kind is int:
        return _to_int(key, value, default)
    if kind is float:
        return _to_float(key, value, default)
    if kind is str:
        return str(value)
    return value


def _to_bool(key: str, value: Any, default: bool) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ConversionError(key, value, default, "expected true/false, yes/no, 1/0 or on/off")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConversionError(key, value, default)


def _to_int(key: str, value: Any, default: int) -> int:
    if isinstance(value, str):
        text = value.strip()
        try:
            # int() first: it is exact for integers beyond 2**53, where float() would round.
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise ConversionError(key, value, default) from None
        if not number.is_integer():
            raise ConversionError(key, value, default, "it is not a whole number")
        return int(number)
    try:
        whole = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConversionError(key, value, default) from None
    # 3.0 becomes 3, but 3.7 is refused instead of silently truncated.
    if whole != value:
        raise ConversionError(key, value, default, "it is not a whole number")
    return whole


def _to_float(key: str, value: Any, default: float) -> float:
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise ConversionError(key, value, default) from None
