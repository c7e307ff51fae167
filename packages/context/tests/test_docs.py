"""The Python examples in the package README and the user guide run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent
DOCS = [PACKAGE / "README.md", PACKAGE.parent.parent / "docs" / "guide" / "context.md"]


def _blocks() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        if path.is_file():
            for index, code in enumerate(
                re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
            ):
                found.append((f"{path.name}[{index}]", code))
    return found


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[where for where, _ in _blocks()])
def test_example_runs(where: str, code: str) -> None:
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})


def test_the_readme_example_exists() -> None:
    assert any(where.startswith("README.md") for where, _ in _blocks())
