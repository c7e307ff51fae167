"""Parameter keys: dotted names, nested dicts flattened into them, ``"key=value"`` strings.

``param_scope(model={"width": 8})`` sets ``model.width``; ``param_scope("lr=0.1")`` sets ``lr``
to the string ``"0.1"``. In attribute syntax, dunders stay Python's and names starting with
``_`` are not read as parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _private_read(name: str, where: str) -> str:
    """Return the message of a read of ``ps._name``: such names stay Python's protocols'."""
    return (
        f"{name!r}: a name starting with '_' is not read as a parameter in attribute syntax "
        f"(copy, pickle and notebooks probe such names); read the key as {where}[{name!r}]"
    )


def _flattens(value: Any) -> bool:
    """Tell whether a value is a dict that is written as dotted keys (non-empty, str keys)."""
    return type(value) is dict and bool(value) and all(isinstance(k, str) for k in value)


def _nested(values: dict[str, Any]) -> bool:
    """Tell whether ``values`` holds a dict that ``_flat_items`` flattens."""
    # A loop, not any(...): a generator costs several times as much on small dicts.
    for value in values.values():  # noqa: SIM110
        if type(value) is dict and _flattens(value):
            return True
    return False


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
        if _flattens(value):
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
