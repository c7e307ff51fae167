"""Parameter values as plain data, and the run ids derived from their canonical encoding.

Parameters are JSON-like data (None, bools, ints, floats, strings, lists and string-keyed dicts)
because they are stored in the results index, printed by the command line and compared across
processes. Run ids, like duplicate detection in the parameter spaces, use the type-tagged, versioned
encoding of assay-ops ([`assay_ops.canonical_bytes`][assay_ops.canonical_bytes]), the one seeds
derive from: ``1``, ``1.0`` and ``True`` give different run ids, and dict order does not matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from assay_context import MAX_NESTING, nesting_depth
from assay_ops import canonical_digest

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
        ValueError: for a value nesting lists and dicts more than ``MAX_NESTING`` (100) deep.

    """
    try:
        return _normalise(value, where, 0)
    except _Deeper:
        raise ValueError(
            f"{where} is nested {nesting_depth(value)} levels deep; expected at most "
            f"{MAX_NESTING} levels of nested containers"
        ) from None


class _Deeper(Exception):
    """Raised at the first list or dict nested past ``MAX_NESTING``."""


def _normalise(value: Any, where: str, depth: int) -> Any:
    # ``depth`` counts the lists and dicts around ``value``.
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return _normalise(value.item(), where, depth)
    if isinstance(value, (list, Mapping)) and depth >= MAX_NESTING:
        raise _Deeper
    if isinstance(value, list):
        return [_normalise(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where}: dict key {key!r} is a {type(key).__name__}, expected str"
                )
            out[key] = _normalise(item, f"{where}[{key!r}]", depth + 1)
        return out
    raise TypeError(
        f"{where} = {value!r} is a {type(value).__name__}; expected JSON-like data "
        "(None, bool, int, float, str, list or dict with str keys)"
    )


def run_id(params: Mapping[str, Any], replicate: int) -> str:
    """Return the run id of one (params, replicate) pair: a pure function of both.

    Examples:
        >>> run_id({"n": 10}, 0) == run_id({"n": 10}, 0)
        True
        >>> run_id({"n": 10}, 0) == run_id({"n": 10}, 1)
        False

    """
    # The ops digest includes the encoding's version: a deliberate change of the encoding
    # changes every run id visibly instead of mixing old and new ids in one folder.
    digest = canonical_digest({"params": dict(params), "replicate": replicate})
    return digest[:RUN_ID_LENGTH]
