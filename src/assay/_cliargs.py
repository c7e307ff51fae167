"""Reading the ``assay`` command's arguments: values read as JSON, ``KEY=VALUE``, grid axes.

``UsageError`` is the error of an argument that cannot be used (printed as one line).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any


class UsageError(ValueError):
    """A command-line argument that cannot be used; printed as one line."""


def parse_value(text: str) -> Any:
    """Read a command-line value: JSON when it parses (numbers, true, null, lists), else a string.

    Examples:
        >>> parse_value("1e3"), parse_value("true"), parse_value("adam"), parse_value("[1, 2]")
        (1000.0, True, 'adam', [1, 2])

    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """Split ``key=value`` on the first ``=``, with an error naming the option."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{option} {text!r}: expected KEY=VALUE")
    return key.strip(), value


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """Read ``--grid key=v1,v2`` options into grid axes.

    Each value is read by ``parse_value``; commas inside a JSON list, object or string
    belong to the value (``layers=[64, 64],[128]`` is two values).

    Examples:
        >>> parse_grid(["n=1e3,1e4", "method=a,b"])
        {'n': [1000.0, 10000.0], 'method': ['a', 'b']}

    """
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, values = parse_assignment(item, "--grid")
        if key in axes:
            raise UsageError(f"--grid {item!r}: parameter {key!r} given twice")
        parts = _split_values(values)
        if any(not part.strip() for part in parts):
            # most often an unset shell variable (--grid n=$SIZES): never sweep over ""
            raise UsageError(
                f'--grid {item!r}: an empty value; expected KEY=V1,V2,... (write "" for '
                "the empty string)"
            )
        axes[key] = [parse_value(v) for v in parts]
    return axes


#: The distributions ``--space`` reads, by name, and how many numbers each takes.
_DISTRIBUTIONS = {"uniform": 2, "loguniform": 2, "randint": 2}


def parse_space(items: Sequence[str]) -> dict[str, Any]:
    """Read ``--space key=DIST`` options into the distributions of a search.

    ``DIST`` is ``uniform(LOW,HIGH)``, ``loguniform(LOW,HIGH)``, ``randint(LOW,HIGH)``,
    ``choice(V1,V2,...)`` (each value read by ``parse_value``) or a fixed value.

    Examples:
        >>> parse_space(["lr=loguniform(1e-4,1e-1)", "opt=choice(adam,sgd)", "layers=2"])
        {'lr': loguniform(low=0.0001, high=0.1), 'opt': choice(['adam', 'sgd']), 'layers': 2}

    """
    from ._distributions import choice, loguniform, randint, uniform

    makers: dict[str, Any] = {"uniform": uniform, "loguniform": loguniform, "randint": randint}
    space: dict[str, Any] = {}
    for item in items:
        key, text = parse_assignment(item, "--space")
        if key in space:
            raise UsageError(f"--space {item!r}: parameter {key!r} given twice")
        name, paren, rest = text.strip().partition("(")
        if not paren or not rest.endswith(")"):
            space[key] = parse_value(text)
            continue
        args = [parse_value(part) for part in _split_values(rest[:-1])]
        if name == "choice" and args:
            space[key] = choice(args)
        elif name in makers and len(args) == _DISTRIBUTIONS[name]:
            space[key] = makers[name](*args)
        else:
            raise UsageError(
                f"--space {item!r}: expected KEY=uniform(LOW,HIGH), loguniform(LOW,HIGH), "
                "randint(LOW,HIGH), choice(V1,V2,...) or a fixed value"
            )
    return space


def _split_values(text: str) -> list[str]:
    """Split ``text`` on the commas outside JSON brackets, braces and double-quoted strings.

    Examples:
        >>> _split_values('a,[1, 2],{"k": 1},"x,y"')
        ['a', '[1, 2]', '{"k": 1}', '"x,y"']

    """
    parts, depth, quoted, escaped, start = [], 0, False, False, 0
    for i, char in enumerate(text):
        if quoted:  # inside a JSON string: only its closing (unescaped) quote matters
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)  # a stray bracket is text, not a reason to fail
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def look_in_current_folder() -> None:
    """Let ``module:operation`` refs name modules of the current folder, as ``python -m`` does.

    A console script starts with its own folder first on ``sys.path``, not the current one, so
    ``assay run train:sweep`` next to ``train.py`` would not find it. Worker processes inherit
    the path (pools) or start in the same folder with ``python -m`` (submitit, Slurm).
    """
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"
