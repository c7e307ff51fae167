from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The shared test steps live in an importable module, so that worker processes can unpickle them.
sys.path.insert(0, str(Path(__file__).parent))

from steps_testkit import CALLS


@pytest.fixture(autouse=True)
def _reset_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "cache"
