"""Canonical form of parameter values and the run ids derived from it.

Parameters are JSON-like data (None, bools, ints, floats, strings, lists and string-keyed
dicts) because they are stored in the results index, printed by the command line and compared
across processes. The encoding is type-tagged so that ``1``, ``1.0`` and ``True`` give
different run ids, and dict order does not matter.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

#: Bump when the encoding changes: run ids of existing folders would change with it.
ENCODING_VERSION = 1

#: Length in hex digits of a run id (80 bits: no collision in any realistic sweep).
RUN_ID_LENGTH = 20


def normalise(value: Any, where: str) -> Any:
    """Return ``value`` as plain JSON-like data, or raise naming ``where``.

    Numpy scalars (``np.float64(0.1)``, ``np.int64(3)``) become Python numbers, since grids are
    often built with ``np.logspace``; everything else must already be plain data.

    Args:
        value: a parameter value.
        where: how to name the value in an error, e.g. ``"parameter 'lr'"``.

    Returns:
        The value with numpy scalars replaced by Python scalars.

    Raises:
        TypeError: for a value of an unsupported type (tuples, sets, objects, ...).

    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return normalise(value.item(), where)
    if isinstance(value, list):
        return [normalise(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where}: dict key {key!r} is a {type(key).__name__}, expected str"
                )
            out[key] = normalise(item, f"{where}[{key!r}]")
        return out
    raise TypeError(
        f"{where} = {value!r} is a {type(value).__name__}; expected JSON-like data "
        "(None, bool, int, float, str, list or dict with str keys)"
    )


def encode(value: Any) -> str:
    """Return the canonical, type-tagged text of normalised data.

    Example:
        >>> encode({"b": 1, "a": [1.0, True]}) == encode({"a": [1.0, True], "b": 1})
        True
        >>> encode(1) == encode(1.0)
        False

    """
    if value is None:
        return "n"
    if isinstance(value, bool):
        return "b1" if value else "b0"
    if isinstance(value, int):
        return f"i{value};"
    if isinstance(value, float):
        # repr round-trips every float exactly; nan has a single spelling
        return "fnan;" if math.isnan(value) else f"f{value!r};"
    if isinstance(value, str):
        return f"s{len(value)}:{value}"
    if isinstance(value, list):
        return "l[" + ",".join(encode(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "d{" + ",".join(encode(k) + "=" + encode(v) for k, v in items) + "}"
    raise TypeError(f"cannot encode {value!r} of type {type(value).__name__}")


def run_id(params: Mapping[str, Any], replicate: int) -> str:
    """Return the run id of one (params, replicate) pair: a pure function of both.

    Example:
        >>> run_id({"n": 10}, 0) == run_id({"n": 10}, 0)
        True
        >>> run_id({"n": 10}, 0) == run_id({"n": 10}, 1)
        False

    """
    text = f"assay-run/v{ENCODING_VERSION}|{encode(dict(params))}|r{replicate}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()[:RUN_ID_LENGTH]
