"""A canonical, type-tagged byte encoding of parameter values, and its digest.

Seeds are derived from this digest, so it must be a pure function of the *value*, identical in
every process on every machine, and it must tell apart values that Python's ``==`` confuses
(``1 == 1.0 == True``). Every value is written as a one-byte type tag followed by a
self-delimiting payload; containers write their length first, so no two different values share
an encoding.

Encoding version 1 (``CANONICAL_VERSION``):

==================  ====  ====================================================================
type                tag   payload
==================  ====  ====================================================================
``None``            N     nothing
``bool``            T/F   nothing (checked before ``int``, so ``True`` is not ``1``)
``int``             i     signed decimal digits, length-prefixed (any size)
``float``           f     IEEE-754 binary64, big-endian; every NaN is written as one NaN
``complex``         c     two binary64 values
``str``             s     UTF-8 bytes, length-prefixed
``bytes``           b     raw bytes, length-prefixed
``pathlib`` path    p     ``as_posix()`` text, length-prefixed (a path is not its string)
``enum.Enum``       e     qualified class name, then the member's value
``list``            l     element count, then each element
``tuple``           t     element count, then each element (a tuple is not a list)
mapping             d     item count, then key/value pairs sorted by the key's encoding
``set``/frozenset   S     element count, then elements sorted by their encoding
numpy scalar        g     dtype string (little-endian), then the value's bytes
numpy array         a     dtype string (little-endian), shape, then the C-order bytes
==================  ====  ====================================================================

A numpy masked array is refused: its bytes are its data alone, so arrays differing only in
their mask would share an encoding.

Lengths and counts are unsigned 64-bit big-endian integers. Mappings and sets are sorted by
encoding, so insertion order never matters. Any other type is refused with a ``TypeError``
naming where in the parameters it sits; silently hashing ``repr()`` would make seeds depend on
memory addresses.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
from assay_context import nesting_depth

#: Version of the encoding below; it is part of every digest, so a deliberate change of the
#: encoding changes every derived seed in a visible way.
CANONICAL_VERSION = 1

_SUPPORTED = (
    "None, bool, int, float, complex, str, bytes, a pathlib path, an Enum member, list, tuple, "
    "a mapping, set, frozenset, or a numpy scalar or array"
)
_NAN = struct.pack(">d", float("nan"))


#: Most containers nested in one another in an encoded value, in all: the 100 levels a
#: parameter value may take where it enters (``assay_context.MAX_NESTING``), and room for what
#: holds it. Deeper values are refused with a ValueError rather than exhausting the stack.
MAX_ENCODED_NESTING = 200


class _TooDeep(Exception):
    """Raised at the first container nested too deep; containers add (key, value) on the way out."""

    def __init__(self) -> None:
        super().__init__()
        self.path: list[tuple[str, Any]] = []


class _Unsupported(TypeError):
    """Raised deep in the encoder; containers add their key to ``where`` on the way out."""

    def __init__(self, value: Any, where: str = "") -> None:
        super().__init__(where)
        self.value = value
        self.where = where


def _length(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _sized(tag: bytes, payload: bytes) -> bytes:
    return tag + _length(len(payload)) + payload


def _float(value: float) -> bytes:
    # NaNs have many bit patterns; they are one value for the purpose of a parameter.
    return _NAN if value != value else struct.pack(">d", value)


def _little_endian(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


def _numpy(value: np.generic | np.ndarray[Any, Any]) -> bytes:
    if value.dtype.hasobject or isinstance(value, np.ma.MaskedArray):
        # A masked array's bytes are its data alone: arrays differing only in their mask
        # would share seeds and run ids.
        raise _Unsupported(value)
    dtype = _little_endian(value.dtype)
    array = np.ascontiguousarray(value, dtype=dtype)
    dtype_tag = _sized(b"", dtype.str.encode())
    if isinstance(value, np.generic):
        return b"g" + dtype_tag + _sized(b"", array.tobytes())
    shape = _length(array.ndim) + b"".join(_length(n) for n in array.shape)
    return b"a" + dtype_tag + shape + _sized(b"", array.tobytes())


def _inner(depth: int) -> int:
    """Return the depth of a container's elements; raise past ``MAX_ENCODED_NESTING``."""
    if depth >= MAX_ENCODED_NESTING:
        raise _TooDeep
    return depth + 1


def _items(values: Any, depth: int) -> bytes:
    inner = _inner(depth)
    out = []
    for index, item in enumerate(values):
        try:
            out.append(_enc(item, inner))
        except _Unsupported as err:
            err.where = f"[{index}]{err.where}"
            raise
        except _TooDeep as err:
            err.path.append((f"[{index}]", item))
            raise
    return _length(len(out)) + b"".join(out)


def _mapping(value: Mapping[Any, Any], depth: int) -> bytes:
    inner = _inner(depth)
    pairs = []
    for key, item in value.items():
        try:
            pairs.append(_enc(key, inner) + _enc(item, inner))
        except _Unsupported as err:
            err.where = f"[{key!r}]{err.where}"
            raise
        except _TooDeep as err:
            err.path.append((f"[{key!r}]", item))
            raise
    pairs.sort()
    return b"d" + _length(len(pairs)) + b"".join(pairs)


def _set(value: Any, depth: int) -> bytes:
    inner = _inner(depth)
    try:
        items = sorted(_enc(item, inner) for item in value)
    except _Unsupported as err:
        err.where = f" element{err.where}"
        raise
    return b"S" + _length(len(items)) + b"".join(items)


def _enum(value: enum.Enum, depth: int) -> bytes:
    cls = type(value)
    name = f"{cls.__module__}.{cls.__qualname__}".encode()
    return b"e" + _sized(b"", name) + _enc(value.value, depth)


# Exact types first, by dictionary lookup: the common parameters cost one lookup each.
_EXACT: dict[type, Callable[[Any, int], bytes]] = {
    type(None): lambda v, d: b"N",
    bool: lambda v, d: b"T" if v else b"F",
    int: lambda v, d: _sized(b"i", str(v).encode()),
    float: lambda v, d: b"f" + _float(v),
    str: lambda v, d: _sized(b"s", v.encode("utf-8")),
    list: lambda v, d: b"l" + _items(v, d),
    tuple: lambda v, d: b"t" + _items(v, d),
    dict: _mapping,
}


def _enc(value: Any, depth: int) -> bytes:
    # ``depth`` counts the containers around ``value``.
    encoder = _EXACT.get(type(value))
    if encoder is not None:
        return encoder(value, depth)
    # Subclasses and the rarer types. Order matters: numpy scalars subclass float/int, bool
    # subclasses int, enum members may subclass int or str.
    if isinstance(value, (np.generic, np.ndarray)):
        return _numpy(value)
    if isinstance(value, enum.Enum):
        return _enum(value, depth)
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return _sized(b"i", str(int(value)).encode())
    if isinstance(value, float):
        return b"f" + _float(float(value))
    if isinstance(value, complex):
        return b"c" + _float(value.real) + _float(value.imag)
    if isinstance(value, str):
        return _sized(b"s", str(value).encode("utf-8"))
    if isinstance(value, (bytes, bytearray)):
        return _sized(b"b", bytes(value))
    if isinstance(value, PurePath):
        return _sized(b"p", value.as_posix().encode("utf-8"))
    if isinstance(value, list):
        return b"l" + _items(value, depth)
    if isinstance(value, tuple):
        return b"t" + _items(value, depth)
    if isinstance(value, Mapping):
        return _mapping(value, depth)
    if isinstance(value, (set, frozenset)):
        return _set(value, depth)
    raise _Unsupported(value)


def _encode(value: Any, name: str) -> bytes:
    try:
        return _enc(value, 0)
    except _TooDeep as err:
        # Name the entry of a mapping (the parameter) that is too deep, else the whole value.
        where, part = err.path[-1] if err.path and isinstance(value, Mapping) else ("", value)
        depth = nesting_depth(part)
        if depth is None:
            raise ValueError(f"{name}{where} contains itself; expected data") from None
        raise ValueError(
            f"{name}{where} is nested {depth} levels deep; expected at most "
            f"{MAX_ENCODED_NESTING} levels of nested containers in all"
        ) from None
    except _Unsupported as err:
        bad = err.value
        if isinstance(bad, np.ma.MaskedArray):
            what = (
                "a numpy masked array (its mask would not count; pass the data and the mask "
                "as two arrays, or value.filled(...))"
            )
        elif hasattr(bad, "dtype"):
            what = "a numpy value of object dtype"
        else:
            what = f"value {bad!r} of type {type(bad).__qualname__}"
        raise TypeError(f"{name}{err.where}: cannot encode {what}; expected {_SUPPORTED}") from None


def canonical_bytes(value: Any, name: str = "params") -> bytes:
    """Return the canonical, type-tagged encoding of ``value`` (version ``CANONICAL_VERSION``).

    Args:
        value: The value to encode; see the module documentation for the supported types.
        name: How to call the value in error messages.

    Raises:
        TypeError: When some part of ``value`` has an unsupported type; the message names
            where it sits, e.g. ``params['model']['init']``.
        ValueError: When ``value`` nests containers more than ``MAX_ENCODED_NESTING`` (200)
            deep, or contains itself; the message names the entry and its depth.

    Examples:
        >>> canonical_bytes(1) != canonical_bytes(1.0) != canonical_bytes(True)
        True

    """
    return _encode(value, name)


def canonical_hasher() -> hashlib._Hash:
    """Return a SHA-256 hasher that has taken in the digest's header (the encoding's version).

    Fed ``canonical_bytes(value)``, in one piece or in parts, it gives
    ``canonical_digest(value)``: a caller hashing many values that share a prefix hashes the
    prefix once and copies the hasher, without writing the header itself.

    Examples:
        >>> hasher = canonical_hasher()
        >>> hasher.update(canonical_bytes([1, 2]))
        >>> hasher.hexdigest() == canonical_digest([1, 2])
        True

    """
    return hashlib.sha256(b"assay.canonical.v%d\x00" % CANONICAL_VERSION)


def canonical_digest(value: Any, name: str = "params") -> str:
    """Return the SHA-256 hex digest of ``value``'s canonical encoding, version included.

    Examples:
        >>> canonical_digest({"a": 1, "b": 2}) == canonical_digest({"b": 2, "a": 1})
        True

    """
    hasher = canonical_hasher()
    hasher.update(_encode(value, name))
    return hasher.hexdigest()
