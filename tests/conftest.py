"""Fixtures shared by the cross-package tests."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(autouse=True)
def _restore_sys_path() -> Iterator[None]:
    # `assay run` puts the current folder on sys.path (as `python -m` does); tests calling the
    # command in this process must not leave it there for the tests after them.
    saved = list(sys.path)
    yield
    sys.path[:] = saved


@pytest.fixture
def write_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ModuleType]]:
    """Write Python source as an importable module, under a name unique to the test; import it.

    ``write_module(source, prefix)`` returns the module. Called again with the same prefix, it
    rewrites that module and imports it afresh (an operation whose code changed). Workers of a
    process pool import it by name too. The modules are forgotten after the test.
    """
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    names: dict[str, str] = {}

    def write(source: str, prefix: str = "assay_test_module") -> ModuleType:
        name = names.setdefault(prefix, f"{prefix}_{uuid.uuid4().hex[:8]}")
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    yield write
    for name in names.values():
        sys.modules.pop(name, None)
