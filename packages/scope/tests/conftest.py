"""Every test starts from a clean slate: no scope entered, nothing published by frozen()."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from assay_scope import _state


@pytest.fixture(autouse=True)
def clean_scope_state() -> Iterator[None]:
    # Start from an empty base even when code run earlier in this process called frozen().
    published = dict(_state.ROOT_VALUES)
    _state.ROOT_VALUES.clear()
    token = _state.CURRENT.set(_state.ROOT)
    yield
    _state.CURRENT.reset(token)
    _state.ROOT_VALUES.clear()
    _state.ROOT_VALUES.update(published)
