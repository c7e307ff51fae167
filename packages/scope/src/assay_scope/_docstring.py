"""Reading parameter descriptions and the summary out of a docstring (Google, NumPy, reST)."""

from __future__ import annotations

import inspect
import re

_GOOGLE_HEADERS = ("args:", "arguments:", "parameters:", "params:")
_GOOGLE_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^(\w+)\s*(:.*)?$")
_REST_ENTRY = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def summary(doc: str | None) -> str:
    """Return the docstring's text before its first section (``Args:``, ``Parameters``...)."""
    lines = []
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped = line.strip().lower()
        if (
            stripped in _GOOGLE_HEADERS
            or stripped.startswith(":param")
            or stripped
            in (
                "returns:",
                "raises:",
                "example:",
                "examples:",
                "parameters",
            )
        ):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def param_help(doc: str | None) -> dict[str, str]:
    """Map each documented parameter name to its one-line description.

    Examples:
        >>> param_help('''Train.
        ...
        ... Args:
        ...     lr: learning rate.
        ...     epochs (int): passes over
        ...         the data.
        ... ''')
        {'lr': 'learning rate.', 'epochs': 'passes over the data.'}

    """
    lines = inspect.cleandoc(doc or "").splitlines()
    found: dict[str, str] = {}
    _google(lines, found)
    _numpy(lines, found)
    for line in lines:
        match = _REST_ENTRY.match(line.strip())
        if match:
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def _google(lines: list[str], found: dict[str, str]) -> None:
    inside, indent, name = False, 0, ""
    for line in lines:
        if not inside:
            inside = line.strip().lower() in _GOOGLE_HEADERS
            indent = -1
            continue
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:  # the next section starts
            inside = False
            continue
        if indent < 0:
            indent = depth
        match = _GOOGLE_ENTRY.match(line.strip())
        if depth == indent and match:
            name = match.group(1).lstrip("*")
            found.setdefault(name, match.group(3).strip())
        elif name and depth > indent:  # a continuation line of the entry above
            found[name] = f"{found[name]} {line.strip()}".strip()


def _numpy(lines: list[str], found: dict[str, str]) -> None:
    for start in range(len(lines) - 1):
        if lines[start].strip().lower() != "parameters" or not set(lines[start + 1].strip()) <= {
            "-"
        }:
            continue
        name = ""
        for line in lines[start + 2 :]:
            if not line.strip():
                continue
            if line[0] != " ":
                match = _NUMPY_ENTRY.match(line.strip())
                if not match or (set(line.strip()) <= {"-"}):
                    break
                name = match.group(1)
            elif name:
                found[name] = f"{found.get(name, '')} {line.strip()}".strip()
