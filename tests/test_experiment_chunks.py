"""How a sweep is cut into chunks for the backend: few chunks for fast runs, small for slow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, grid
from assay._index import ResultsIndex
from assay._sweep_chunks import _FAST, _MAX_CHUNK, _MIN_CHUNK, _SLOW, _next_size


def test_chunks_grow_fast_for_fast_runs_and_shrink_for_slow_ones() -> None:
    assert _next_size(_MIN_CHUNK, _FAST / 10) == 8 * _MIN_CHUNK
    assert _next_size(_MIN_CHUNK, _FAST / 2) == 2 * _MIN_CHUNK
    assert _next_size(4 * _MIN_CHUNK, (_FAST + _SLOW) / 2) == 4 * _MIN_CHUNK
    assert _next_size(4 * _MIN_CHUNK, _SLOW * 2) == 2 * _MIN_CHUNK
    assert _next_size(_MIN_CHUNK, _SLOW * 2) == _MIN_CHUNK
    assert _next_size(_MAX_CHUNK, 0.0) == _MAX_CHUNK


def test_chunk_sizes_follow_the_schedule_and_every_run_is_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    store = ResultsIndex.store

    def counting_store(self: ResultsIndex, outcomes: Any) -> None:
        batch = list(outcomes)
        sizes.append(len(batch))
        store(self, batch)

    monkeypatch.setattr(ResultsIndex, "store", counting_store)
    monkeypatch.setattr("assay._sweep_chunks._next_size", lambda size, seconds: size * 8)
    experiment = Experiment(
        "chunks", "assay._demo:estimate_pi", grid(n_samples=list(range(10, 310))),
        folder=tmp_path / "exp", progress=False,
    )  # fmt: skip
    assert experiment.run().counts() == {"success": 300}
    assert sum(sizes) == 300
    assert sizes[:3] == [_MIN_CHUNK, 8 * _MIN_CHUNK, 300 - 9 * _MIN_CHUNK]
