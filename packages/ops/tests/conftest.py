"""Shared fixtures: import code written to a temporary folder as a real module."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ModuleMaker = Callable[[str, str], ModuleType]


@pytest.fixture
def make_module(tmp_path: Path) -> Iterator[ModuleMaker]:
    """Write ``source`` to ``<tmp>/<name>.py`` and import it; the module is removed afterwards."""
    made: list[str] = []
    sys.path.insert(0, str(tmp_path))

    def make(name: str, source: str) -> ModuleType:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        sys.modules.pop(name, None)
        made.append(name)
        return importlib.import_module(name)

    yield make
    sys.path.remove(str(tmp_path))
    for name in made:
        sys.modules.pop(name, None)
