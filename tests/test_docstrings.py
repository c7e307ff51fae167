"""Every example in a docstring of every package runs and prints what it shows.

The API reference of the documentation site is generated from these docstrings, so their
examples are documentation too: they run here, module by module, imported by their real names.
"""

from __future__ import annotations

import contextvars
import doctest
import gc
import importlib
from pathlib import Path

import pytest

from tests._workspace import ROOT

SOURCES = [*sorted(ROOT.glob("packages/*/src")), ROOT / "src"]


def module_names() -> list[str]:
    names = []
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            parts = path.relative_to(source).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[-1] != "__main__":
                names.append(".".join(parts))
    return names


def test_every_package_is_scanned() -> None:
    tops = {name.split(".")[0] for name in module_names()}
    assert tops == {path.name for source in SOURCES for path in source.iterdir() if path.is_dir()}


@pytest.mark.parametrize("name", module_names())
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name)
    # Examples may enter scopes: each module's run keeps its context variables to itself, and
    # the base that param_scope.frozen() publishes process-wide is put back as it was.
    base = importlib.import_module("assay_scope._state").ROOT_VALUES
    published = dict(base)
    context = contextvars.copy_context()
    try:
        for test in tests:
            context.run(runner.run, test)
    finally:
        base.clear()
        base.update(published)
        # Classes an example defined (a Step named like a test's) must not outlive it.
        gc.collect()
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) of {name} failed"
