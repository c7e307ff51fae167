"""The examples in the docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import assay_ops
import pytest

MODULES = sorted(m.name for m in pkgutil.iter_modules(assay_ops.__path__, "assay_ops."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    if result.attempted == 0:
        pytest.skip(f"{name} has no docstring examples")
    assert result.failed == 0
