"""The one place that renders rows for the terminal: rich tables, CSV and JSON.

``print_table`` prints dict rows (``assay results``, the demo); ``print_cache_table`` and
``print_pruned`` print the tables of ``assay cache info`` and ``assay cache prune``;
``csv_rows`` and ``json_safe`` write rows for ``--csv`` and ``--json``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cachefolder import FolderInfo
    from ._prune import PruneEntry


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.6g}"
        # a whole float keeps its point: 1.0 and the int 1 are different values (and runs)
        return text if any(c in text for c in ".einaf") else f"{text}.0"
    return str(value)


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Print dict rows as a table (rich), columns in the order of the first row."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else []:
        table.add_column(column, justify="right" if _numeric(rows, column) else "left")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    Console(width=max(100, len(rows[0]) * 14) if rows else 100).print(table)


def _numeric(rows: list[dict[str, Any]], column: str) -> bool:
    return all(_is_number(r.get(column)) for r in rows)


def _is_number(value: Any) -> bool:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return True
    try:
        float(value)  # numbers already formatted as text align like numbers
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def print_cache_table(cache: Path, infos: Sequence[FolderInfo], title: str) -> None:
    """Print the table of ``assay cache info``: one row per folder of the cache."""
    from rich.console import Console
    from rich.table import Table

    from ._units import format_size

    base = Path(os.path.abspath(cache))
    rows = [
        (Path(info.folder).relative_to(base).as_posix(), [getattr(info, f) for f in _INFO_FIELDS])
        for info in infos
    ]
    if len(rows) > 1:
        rows.append(("all", [sum(column) for column in zip(*(v for _, v in rows), strict=True)]))
    caption = (
        "size: of the segments, then of the large array files; dead: bytes of superseded or "
        "cleared entries (assay cache compact frees them); older: entries of the older layout"
    )
    table = Table(title=title, caption=caption)
    columns = ["entries", "errors", "segments", "size", "arrays", "size", "dead", "older", "claims"]
    table.add_column("folder", no_wrap=True)
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in rows:
        cells = [
            format_size(value) if field.endswith("bytes") else str(value)
            for field, value in zip(_INFO_FIELDS, values, strict=True)
        ]
        table.add_row(name, *cells)
    Console(width=max(100, max((len(name) for name, _ in rows), default=0) + 90)).print(table)


#: The fields of ``FolderInfo`` that the columns of ``assay cache info`` show, in order.
_INFO_FIELDS = (
    "entries",
    "errors",
    "segments",
    "segment_bytes",
    "arrays",
    "array_bytes",
    "dead_bytes",
    "legacy",
    "claims",
)


def print_pruned(folder: Path, entries: Sequence[PruneEntry], title: str) -> None:
    """Print the table of ``assay cache prune``: the entries it deletes or would delete."""
    import datetime

    from rich.console import Console
    from rich.table import Table

    from ._units import format_size

    paths = [
        entry.path.relative_to(folder).as_posix()
        + ("/" if entry.kind in ("version", "trash") else "")
        for entry in entries
    ]
    table = Table(title=title)
    table.add_column("path", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("modified")
    table.add_column("reason")
    for path, entry in zip(paths, entries, strict=True):
        modified = datetime.datetime.fromtimestamp(entry.modified).strftime("%Y-%m-%d %H:%M")
        table.add_row(path, format_size(entry.bytes), modified, entry.reason)
    reasons = max((len(entry.reason) for entry in entries), default=0)
    width = max((len(p) for p in paths), default=0) + reasons + 45
    Console(width=max(100, width)).print(table)


def _spelled(value: Any) -> Any:
    """Return ``value`` with every NaN and infinity, at any depth, as the string JSON lacks.

    NaN (the std of a single run) and the infinities have no JSON literal (``json.dumps``
    writes a bare ``NaN``, which strict parsers refuse): ``--json`` and ``--csv`` write them
    as ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, in metrics and params alike (Python's
    ``float()`` reads them back).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list):
        return [_spelled(v) for v in value]
    if isinstance(value, dict):
        return {k: _spelled(v) for k, v in value.items()}
    return value


def json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _spelled(v) for k, v in row.items()}


#: A text cell starting with one of these is a formula to a spreadsheet (OWASP's list): it is
#: written after a single quote, which the spreadsheet shows as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, int)):  # numbers, negative ones included, stay numbers
        return str(value)
    if isinstance(value, float):
        return str(_spelled(value))
    if isinstance(value, (list, dict)):  # as JSON: starts with [ or {
        return json.dumps(_spelled(value), allow_nan=False)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_field(text: str) -> str:
    # Quoted when it holds a separator, a quote or a line break (the csv module leaves a
    # carriage return unquoted when lines end in a newline, which splits the row for readers).
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    names = list(rows[0])
    lines = [[_csv_text(name) for name in names]]
    lines += [[_csv_text(row.get(name)) for name in names] for row in rows]
    return "".join(",".join(_csv_field(cell) for cell in line) + "\n" for line in lines)
