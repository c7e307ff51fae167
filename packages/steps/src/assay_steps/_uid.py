"""Canonical, type-tagged, versioned encoding of values, hashed into cache uids.

Every value maps to a self-delimiting byte string: a one-letter type tag, then a length or
count, then the payload. Containers concatenate the encodings of their elements, so two
values share an encoding only if they have the same types and contents. Unordered containers
(dict, set, frozenset) sort the encodings of their elements, so insertion order is irrelevant.
Arrays contribute their dtype, shape and the xxh3-128 digest of their bytes, so hashing a
large array costs one pass over its buffer and no copy (when it is contiguous). A concrete
``pathlib.Path`` contributes the digest of what it names on disk (see ``_filehash``), a pure
path its text.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import struct
import sys
import threading
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pydantic
import xxhash
from assay_ops import MAX_ENCODED_NESTING

from ._filehash import path_digest

#: Bumped on any deliberate change of the encoding; it is hashed into every uid.
#: 2: classes (models, enums) are named by module and qualified name, not by short name.
#: 3: classes are named by their public name (never a private module path); a concrete
#: ``Path`` is keyed by the content of the file or directory it names.
ENCODING = 3
ENCODING_VERSION = b"assay-uid-%d;" % ENCODING

#: The types of value a cache uid is computed from, as error messages name them (the one
#: list: the layers above quote it rather than keep a copy that could drift).
UID_TYPES = (
    "None, bool, int, float, complex, str, bytes, tuple, list, dict, set, frozenset, Path, "
    "Enum, date/time/timedelta, Decimal, UUID, a numpy array or scalar, or a pydantic model"
)

_Encoder = Callable[[Any, str], bytes]


def _atom(tag: bytes, payload: bytes) -> bytes:
    return b"%s%d:%s" % (tag, len(payload), payload)


def _enc_int(value: int, _where: str) -> bytes:
    return _atom(b"i", str(value).encode())


def _enc_float(value: float, _where: str) -> bytes:
    # One NaN for all NaNs: they compare unequal but mean the same configuration.
    return b"f" + (b"nan" if math.isnan(value) else struct.pack(">d", value))


def _enc_str(value: str, _where: str) -> bytes:
    return _atom(b"s", value.encode("utf-8", "surrogatepass"))


def _enc_bytes(value: bytes, _where: str) -> bytes:
    return _atom(b"b", bytes(value))


#: Most containers nested in one another in an encoded value, in all (the limit of
#: ``assay_ops``): deeper values are refused with a ValueError rather than exhausting the stack.
MAX_NESTING = MAX_ENCODED_NESTING
_nesting = threading.local()  # containers around the value being encoded, per thread


class _TooDeep(ValueError):
    """A value nests containers past `MAX_NESTING`; ``where`` names the top entry holding them."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where

    def __str__(self) -> str:
        return (
            f"cannot compute a cache uid for {self.where}: it is nested more than {MAX_NESTING} "
            f"levels deep; expected at most {MAX_NESTING} levels of nested containers in all"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.where,))


def _enter(where: str) -> int:
    depth: int = getattr(_nesting, "depth", 0)
    if depth >= MAX_NESTING:
        raise _TooDeep(where)
    _nesting.depth = depth + 1
    return depth + 1


def _leave(error: BaseException | None, depth: int, where: str) -> None:
    _nesting.depth = depth - 1
    if isinstance(error, _TooDeep) and depth == 2:
        error.where = where  # an entry of the outermost container: what the message names


def _enc_sequence(tag: bytes) -> _Encoder:
    def encode_sequence(value: Any, where: str) -> bytes:
        depth, error = _enter(where), None
        try:
            parts = [encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
        except _TooDeep as raised:
            error = raised
            raise
        finally:
            _leave(error, depth, where)
        return b"%s%d:%s" % (tag, len(parts), b"".join(parts))

    return encode_sequence


def _enc_unordered(tag: bytes) -> _Encoder:
    def encode_unordered(value: Any, where: str) -> bytes:
        depth, error = _enter(where), None
        try:
            parts = sorted(encode(item, f"{where}{{...}}") for item in value)
        except _TooDeep as raised:
            error = raised
            raise
        finally:
            _leave(error, depth, where)
        return b"%s%d:%s" % (tag, len(parts), b"".join(parts))

    return encode_unordered


def _enc_dict(value: dict[Any, Any], where: str) -> bytes:
    depth, error = _enter(where), None
    try:
        parts = sorted(
            encode(key, f"{where} key") + encode(item, f"{where}[{key!r}]")
            for key, item in value.items()
        )
    except _TooDeep as raised:
        error = raised
        raise
    finally:
        _leave(error, depth, where)
    return b"d%d:%s" % (len(parts), b"".join(parts))


def _enc_complex(value: complex, where: str) -> bytes:
    return b"c" + _enc_float(value.real, where) + _enc_float(value.imag, where)


def _enc_text(tag: bytes, text: Callable[[Any], str]) -> _Encoder:
    # Values whose standard text is exact and one-to-one within their type: ISO 8601 dates and
    # times (with their UTC offset, so a naive time differs from an aware one), Decimal's str
    # (its precision counts: 0.10 and 0.1 are kept apart) and a UUID's hex digits.
    def encode_text(value: Any, _where: str) -> bytes:
        return _atom(tag, text(value).encode())

    return encode_text


def _iso(value: datetime.date | datetime.time) -> str:
    return value.isoformat()


def _enc_timedelta(value: datetime.timedelta, _where: str) -> bytes:
    return _atom(b"k", b"%d:%d:%d" % (value.days, value.seconds, value.microseconds))


def _enc_path(value: PurePath, where: str) -> bytes:
    if isinstance(value, Path):
        # A file or directory on disk: keyed by what it holds, so edited data recomputes.
        return _atom(b"P", path_digest(value, where))
    # A pure path is a name only (the documented way to key a path by its name).
    return _atom(b"p", value.as_posix().encode("utf-8", "surrogatepass"))


def _enc_array(value: np.ndarray[Any, Any], where: str) -> bytes:
    if value.dtype.hasobject:
        raise TypeError(
            f"cannot compute a cache uid for {where}: numpy array of dtype {value.dtype} "
            "holds Python objects; expected a numeric, bool, string or structured dtype"
        )
    data = np.ascontiguousarray(value)
    digest = xxhash.xxh3_128_digest(data.data if data.size else b"")
    header = _enc_str(data.dtype.str, where) + encode(tuple(data.shape), where)
    return b"a" + header + digest


def _enc_masked(value: np.ma.MaskedArray[Any, Any], where: str) -> bytes:
    # Its data (masked entries included: filled() shows them) and its mask: two arrays that
    # differ only in what they mask are different inputs.
    data = _enc_array(np.ma.getdata(value), where)
    return b"M" + data + _enc_array(np.ma.getmaskarray(value), f"{where}.mask")


def _enc_scalar(value: np.generic, where: str) -> bytes:
    if isinstance(value, np.object_):
        raise TypeError(f"cannot compute a cache uid for {where}: numpy object scalar")
    return b"g" + _enc_str(value.dtype.str, where) + _atom(b"", value.tobytes())


def _enc_enum(value: enum.Enum, where: str) -> bytes:
    return b"e" + _enc_str(class_name(type(value)), where) + encode(value.value, where)


def _enc_model(value: pydantic.BaseModel, where: str) -> bytes:
    # A model provides its own identity (Step leaves out infra and default values).
    fields = getattr(value, "_uid_fields", None)
    data = (
        fields() if fields is not None else {k: getattr(value, k) for k in type(value).model_fields}
    )
    body = _enc_dict(data, f"{where}.{type(value).__name__}")
    return b"m" + _enc_str(class_name(type(value)), where) + body


_public_names: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def class_name(cls: type) -> str:
    """Name a class in an encoding: its public module path and qualified name.

    The short name alone is not enough: ``prep.Normalize`` and ``features.Normalize`` with the
    same fields would share cache entries, and one would silently get the other's results.
    A private module never shows in the name, so that moving a class between private modules
    of a package keeps every uid: the name is the shortest public module that exports the
    class (``assay_steps._step.Chain`` is ``assay_steps.Chain``), else the module path with its
    private parts left out. A class may set its own name with ``__assay_name__``.

    Examples:
        >>> from assay_steps import Chain
        >>> class_name(Chain)
        'assay_steps.Chain'

    """
    found = _public_names.get(cls)
    if found is None:
        found = _public_name(cls)
        _public_names[cls] = found
    return found


def _public_name(cls: type) -> str:
    explicit = cls.__dict__.get("__assay_name__")
    if explicit is not None:
        if not isinstance(explicit, str) or not explicit:
            raise TypeError(
                f"{cls.__qualname__}.__assay_name__ = {explicit!r}; expected a non-empty str"
            )
        return explicit
    parts = cls.__module__.split(".")
    public = [p for p in parts if not _private(p)]
    for end in range(1, len(parts)):
        if _private(parts[end - 1]):
            break
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None and getattr(module, cls.__qualname__, None) is cls:
            return f"{'.'.join(parts[:end])}.{cls.__qualname__}"
    return f"{'.'.join(public) or cls.__module__}.{cls.__qualname__}"


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


_EXACT: dict[type, _Encoder] = {
    type(None): lambda _v, _w: b"N",
    bool: lambda v, _w: b"T" if v else b"F",
    int: _enc_int,
    float: _enc_float,
    str: _enc_str,
    bytes: _enc_bytes,
    tuple: _enc_sequence(b"t"),
    list: _enc_sequence(b"l"),
    dict: _enc_dict,
    set: _enc_unordered(b"S"),
    frozenset: _enc_unordered(b"Z"),
    complex: _enc_complex,
    datetime.datetime: _enc_text(b"w", _iso),
    datetime.date: _enc_text(b"y", _iso),
    datetime.time: _enc_text(b"h", _iso),
    datetime.timedelta: _enc_timedelta,
    decimal.Decimal: _enc_text(b"q", str),
    uuid.UUID: _enc_text(b"u", lambda value: value.hex),
}

# Checked in order for subclasses; bool before int so that True never encodes like 1.
_BASES: list[tuple[type, _Encoder]] = [
    (np.ma.MaskedArray, _enc_masked),  # before ndarray, which it subclasses
    (np.ndarray, _enc_array),
    (np.generic, _enc_scalar),
    (enum.Enum, _enc_enum),
    (pydantic.BaseModel, _enc_model),
    (PurePath, _enc_path),
    (bool, _EXACT[bool]),
    (int, _enc_int),
    (float, _enc_float),
    (str, _enc_str),
    (bytes, _enc_bytes),
    (tuple, _EXACT[tuple]),
    (list, _EXACT[list]),
    (dict, _enc_dict),
    (frozenset, _EXACT[frozenset]),
    (set, _EXACT[set]),
    (complex, _enc_complex),
    (datetime.datetime, _EXACT[datetime.datetime]),  # before date, which it subclasses
    (datetime.date, _EXACT[datetime.date]),
    (datetime.time, _EXACT[datetime.time]),
    (datetime.timedelta, _enc_timedelta),
    (decimal.Decimal, _EXACT[decimal.Decimal]),
    (uuid.UUID, _EXACT[uuid.UUID]),
]


def encode(value: Any, where: str = "value") -> bytes:
    """Return the canonical encoding of ``value``.

    Args:
        value: A supported value: None, bool, int, float, complex, str, bytes, tuple, list,
            dict, set, frozenset, pathlib paths (a ``Path`` by the content of its file or
            directory, a ``PurePath`` by its text), enums, dates, times and durations
            (``datetime``), ``Decimal``, ``UUID``, numpy arrays and scalars, pydantic models.
        where: Name of the value, used in error messages.

    Raises:
        TypeError: ``value`` (or something inside it) has no canonical encoding.
        ValueError: ``value`` nests containers more than ``MAX_NESTING`` (200) deep.
        FileNotFoundError: a ``Path`` in ``value`` names nothing on disk.

    Examples:
        >>> encode(1) != encode(1.0) != encode(True)
        True

    """
    encoder = _EXACT.get(type(value))
    if encoder is not None:
        return encoder(value, where)
    for base, encoder in _BASES:
        if isinstance(value, base):
            return encoder(value, where)
    raise TypeError(
        f"cannot compute a cache uid for {where}={value!r:.80} of type "
        f"{type(value).__qualname__}; expected {UID_TYPES} (or override item_uid)"
    )


def uid_of(value: Any, where: str = "value") -> str:
    """Return the 32-hex-digit xxh3-128 uid of the canonical encoding of ``value``.

    Examples:
        >>> uid_of((1, 2)) == uid_of((1, 2)) != uid_of([1, 2])
        True

    """
    return xxhash.xxh3_128_hexdigest(ENCODING_VERSION + encode(value, where))
