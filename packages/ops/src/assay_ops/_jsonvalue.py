"""Lossless JSON form of record values: tagged objects for what JSON cannot say.

Plain JSON values (str, int, finite float, bool, None, lists, dicts with string keys) are
written as they are. Everything else is a one-key object whose key starts with ``$``:
``$tuple``, ``$set``, ``$frozenset``, ``$bytes`` (base64), ``$path``, ``$enum`` (class
reference and member name), ``$float`` (``"nan"``,
``"inf"``, ``"-inf"``), ``$complex``, ``$numpy`` (a numpy scalar with its dtype; dates and
durations as their count of units, long doubles as exact text), ``$array``
(a numpy array, inline as base64 ``.npy`` bytes or as a ``.npy`` file beside the record) and
``$dict`` (a dict whose keys are not all plain strings, as a list of pairs). A value of any
other type is refused with a ``TypeError`` naming where it sits.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import importlib
import io
import math
import os
from pathlib import Path, PurePath
from typing import Any

import numpy as np

_SUPPORTED = (
    "str, int, float, complex, bool, None, bytes, a pathlib path, an Enum member, list, tuple, "
    "set, frozenset, dict, or a numpy scalar or array (not of object dtype)"
)


def _npy_bytes(array: np.ndarray[Any, Any], where: str) -> bytes:
    if array.dtype.hasobject:
        raise TypeError(
            f"{where}: cannot store a numpy array of object dtype; expected {_SUPPORTED}"
        )
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, flushed and renamed into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _array(array: np.ndarray[Any, Any], where: str, array_dir: Path | None) -> dict[str, Any]:
    data = _npy_bytes(array, where)
    if array_dir is None:
        return {"$array": {"npy": base64.b64encode(data).decode("ascii")}}
    # Named by content, so the same array is stored once and a name never lies about content.
    name = hashlib.sha256(data).hexdigest()[:32] + ".npy"
    target = array_dir / name
    if not target.exists():
        array_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    return {"$array": {"file": name, "dtype": array.dtype.str, "shape": list(array.shape)}}


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _container(value: Any, where: str, array_dir: Path | None) -> Any:
    if isinstance(value, list):
        return [to_json(v, f"{where}[{i}]", array_dir) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"$tuple": [to_json(v, f"{where}[{i}]", array_dir) for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        tag = "$set" if isinstance(value, set) else "$frozenset"
        return {tag: [to_json(v, f"{where} element", array_dir) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: to_json(v, f"{where}[{k!r}]", array_dir) for k, v in value.items()}
        return {
            "$dict": [
                [to_json(k, f"{where} key", array_dir), to_json(v, f"{where}[{k!r}]", array_dir)]
                for k, v in value.items()
            ]
        }
    raise TypeError(
        f"{where}: cannot store value {value!r} of type {type(value).__qualname__} in a run "
        f"record; expected {_SUPPORTED}"
    )


class _NotPlain(Exception):
    """Raised by ``_plain`` on the first value that is not plain JSON."""


def _plain(value: Any) -> Any:
    """Return a copy of plain JSON data (the bulk of every record), or raise ``_NotPlain``.

    Exact types only, one lookup each, and no error text built on the way: ``to_json``
    falls back to the general conversion (which names where a bad value sits) on a miss.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float and value - value == 0.0:  # finite: inf - inf and nan - nan are nan
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or key.startswith("$"):
                raise _NotPlain
            out[key] = _plain(item)
        return out
    if kind is list:
        return [_plain(item) for item in value]
    raise _NotPlain


def _scalar_value(value: np.generic, where: str) -> Any:
    """Return the JSON form of a numpy scalar's value, exact for every dtype.

    ``item()`` is not enough everywhere: dates and durations become ``date``, ``timedelta``,
    a bare int (the unit lost) or None, and long doubles stay numpy scalars (a float would
    round them). Dates and durations are written as their int64 count of units, long doubles
    as the shortest text that reads back to the same value.
    """
    kind = value.dtype.kind
    if kind in "mM":
        return int(np.array(value).view(np.int64)[()])
    item = value.item()
    if isinstance(item, np.generic):  # long double and long complex: no Python equivalent
        if kind == "c":
            return [str(np.real(item)), str(np.imag(item))]
        return str(item)
    return to_json(item, where)


def _load_scalar(spec: dict[str, Any]) -> Any:
    # Scalars are in native byte order; so are the views below, wherever the record was written.
    dtype = np.dtype(spec["dtype"]).newbyteorder("=")
    value = from_json(spec["value"])
    if dtype.kind in "mM":
        if value is None:  # NaT, as records written before counts were stored hold it
            return np.array("NaT", dtype=dtype)[()]
        return np.array(value, dtype=np.int64).view(dtype)[()]
    if dtype.kind == "c" and isinstance(value, list):
        part = np.finfo(dtype).dtype  # the real type of each half: long double for long complex
        halves = np.array([part.type(value[0]), part.type(value[1])], dtype=part)
        return halves.view(dtype)[0]
    return dtype.type(value)


def to_json(value: Any, where: str = "value", array_dir: Path | None = None) -> Any:
    """Return a JSON-serialisable form of ``value`` that ``from_json`` turns back into it.

    Args:
        value: The value to convert.
        where: How to name the value in error messages (e.g. ``"params['lr']"``).
        array_dir: Where to write numpy arrays as ``.npy`` files; ``None`` keeps them inline.

    Raises:
        TypeError: When ``value`` holds an unsupported type.

    """
    try:
        return _plain(value)
    except _NotPlain:
        pass
    # Order matters: numpy scalars subclass float/int and bool subclasses int.
    if isinstance(value, np.ndarray):
        return _array(value, where, array_dir)
    if isinstance(value, np.generic):
        if value.dtype.hasobject:
            raise TypeError(f"{where}: cannot store a numpy object scalar; expected {_SUPPORTED}")
        return {"$numpy": {"dtype": value.dtype.str, "value": _scalar_value(value, where)}}
    if isinstance(value, enum.Enum):
        cls = type(value)
        return {"$enum": {"class": f"{cls.__module__}:{cls.__qualname__}", "name": value.name}}
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, complex):
        return {"$complex": [_float(value.real), _float(value.imag)]}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, PurePath):
        return {"$path": str(value)}
    return _container(value, where, array_dir)


def _load_array(spec: dict[str, Any], array_dir: Path | None) -> np.ndarray[Any, Any]:
    if "npy" in spec:
        data = base64.b64decode(spec["npy"])
    else:
        if array_dir is None:
            raise ValueError(
                f"array file {spec.get('file')!r}: the record references arrays stored beside "
                "it; pass array_dir (or use RunRecord.load on its folder)"
            )
        data = (array_dir / Path(spec["file"]).name).read_bytes()
    array: np.ndarray[Any, Any] = np.load(io.BytesIO(data), allow_pickle=False)
    return array


def _load_enum(spec: dict[str, str]) -> enum.Enum:
    module_name, _, qualname = spec["class"].partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, enum.Enum)):
        raise ValueError(f"$enum class {spec['class']!r} is not an Enum")
    member: enum.Enum = target[spec["name"]]
    return member


def _tagged(tag: str, body: Any, array_dir: Path | None) -> Any:
    if tag == "$tuple":
        return tuple(from_json(v, array_dir) for v in body)
    if tag == "$set":
        return {from_json(v, array_dir) for v in body}
    if tag == "$frozenset":
        return frozenset(from_json(v, array_dir) for v in body)
    if tag == "$dict":
        return {from_json(k, array_dir): from_json(v, array_dir) for k, v in body}
    if tag == "$bytes":
        return base64.b64decode(body)
    if tag == "$path":
        return Path(body)
    if tag == "$float":
        return float(body)
    if tag == "$complex":
        return complex(from_json(body[0]), from_json(body[1]))
    if tag == "$numpy":
        return _load_scalar(body)
    if tag == "$array":
        return _load_array(body, array_dir)
    if tag == "$enum":
        return _load_enum(body)
    raise ValueError(f"unknown tag {tag!r} in a stored run record value")


def from_json(data: Any, array_dir: Path | None = None) -> Any:
    """Rebuild a value written by ``to_json``.

    Args:
        data: The JSON form.
        array_dir: The folder holding array files referenced by the JSON form.

    """
    if isinstance(data, list):
        return [from_json(v, array_dir) for v in data]
    if isinstance(data, dict):
        if len(data) == 1:
            ((key, body),) = data.items()
            if key.startswith("$"):
                return _tagged(key, body, array_dir)
        return {k: from_json(v, array_dir) for k, v in data.items()}
    return data
