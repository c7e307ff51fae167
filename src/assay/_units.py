"""Sizes and durations for people: ``500M``, ``2G``, ``30d``, ``12h`` read and written.

Sizes are powers of 1024; durations are a number and one of the units s, m, h, d and w.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhdw])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?")
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_duration(text: str) -> float:
    """Read a duration such as ``30d``, ``12h``, ``90m``, ``2w`` or ``45s``; return seconds.

    Examples:
        >>> parse_duration("12h"), parse_duration("2w")
        (43200.0, 1209600.0)

    Raises:
        ValueError: the text is not a number followed by one of the units s, m, h, d, w.

    """
    match = _DURATION.fullmatch(str(text).strip().lower())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; expected a number and a unit (s, m, h, d or w), "
            "like 30d, 12h, 90m or 2w"
        )
    return float(match[1]) * _DURATION_UNITS[match[2]]


def parse_size(text: str) -> int:
    """Read a size such as ``500M``, ``2G``, ``10k`` or ``1048576`` (powers of 1024); return bytes.

    Examples:
        >>> parse_size("10k"), parse_size("2G"), parse_size("1.5MiB"), parse_size("100")
        (10240, 2147483648, 1572864, 100)

    Raises:
        ValueError: the text is not a number followed by nothing (bytes) or k, M, G or T.

    """
    match = _SIZE.fullmatch(str(text).strip().lower())
    if match is None:
        raise ValueError(
            f"{text!r} is not a size; expected a number of bytes, or a number and a unit "
            "(k, M, G or T: powers of 1024), like 500M, 2G or 10k"
        )
    return int(float(match[1]) * _SIZE_UNITS[match[2]])


def format_size(size: float) -> str:
    """Write a number of bytes for people (powers of 1024).

    Examples:
        >>> format_size(512), format_size(1536), format_size(3 * 2**30)
        ('512 B', '1.5 KiB', '3.0 GiB')

    """
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    return f"{size:.1f} {unit}"


def format_duration(seconds: float) -> str:
    """Write seconds in the largest unit of ``parse_duration`` that divides them.

    Examples:
        >>> format_duration(1209600), format_duration(5400), format_duration(1.5)
        ('2w', '90m', '1.5s')

    """
    for unit in ("w", "d", "h", "m"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds:g}s"
