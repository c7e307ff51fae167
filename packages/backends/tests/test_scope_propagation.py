"""The param_scope values current around ``run_many`` reach the items a thread pool computes.

Inline (``Cached``), an item sees the caller's scope; a backend is not part of a step's
identity, so switching to ``ThreadPool`` must not change what the items compute, whatever the
number of workers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from assay_backends import ThreadPool
from assay_scope import auto_param, param_scope
from assay_steps import Step


@auto_param("model")
def width(w: int = 8) -> int:
    return w


class Probe(Step):
    def _run(self, value: int) -> tuple[int, int, int]:
        return value, width(), param_scope.extra | -1


@pytest.fixture(autouse=True)
def _four_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    # Several workers even on a one-core machine: the pool, not its inline path, is tested.
    monkeypatch.setattr(os, "cpu_count", lambda: 4)


@pytest.mark.parametrize("max_jobs", [1, 2, 4])
def test_thread_pool_items_see_the_callers_scope_like_inline_items(
    tmp_path: Path, max_jobs: int
) -> None:
    items = [1, 2, 3, 4, 5, 6]
    with param_scope(**{"model.w": 64, "extra": 5}):
        inline = list(Probe(infra={"backend": "Cached", "folder": tmp_path / "c"}).run_many(items))
        infra = ThreadPool(folder=tmp_path / "t", max_jobs=max_jobs, progress=False)
        pooled = list(Probe(infra=infra).run_many(items))
    assert inline == [(value, 64, 5) for value in items]
    assert pooled == inline


class OwnScope(Step):
    def _run(self, value: int) -> tuple[int, int]:
        with param_scope(**{"model.w": value}):
            time.sleep(0.01)  # let the other threads enter their scopes meanwhile
            return width(), param_scope.extra | -1


def test_items_entering_their_own_scopes_on_threads_stay_isolated(tmp_path: Path) -> None:
    items = list(range(8))
    with param_scope(extra=3):
        infra = ThreadPool(folder=tmp_path, max_jobs=4, progress=False)
        results = list(OwnScope(infra=infra).run_many(items))
    assert [w for w, _ in results] == items
    with param_scope(extra=3):
        assert width() == 8  # nothing an item entered leaked into the caller
