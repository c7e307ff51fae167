"""Fixtures shared by the cross-package tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_sys_path() -> Iterator[None]:
    # `assay run` puts the current folder on sys.path (as `python -m` does); tests calling the
    # command in this process must not leave it there for the tests after them.
    saved = list(sys.path)
    yield
    sys.path[:] = saved
