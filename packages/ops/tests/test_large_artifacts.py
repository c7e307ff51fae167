"""Large artifacts are described and written in one streaming pass, not held twice in memory.

A checkpoint file captured with ``capture.file`` is referenced, not copied into memory: its
size and SHA-256 are read in chunks. An array is serialised once, straight into the file
(and the digest), instead of into a second in-memory copy for each of them.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_ops import Capture

_MB = 1 << 20


def _peak(action: Callable[[], Any]) -> int:
    """Return the peak of memory allocated while ``action`` runs, in bytes."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("folder", [True, False], ids=["written", "in memory"])
def test_a_large_file_is_hashed_and_copied_in_chunks(tmp_path: Path, folder: bool) -> None:
    source = tmp_path / "checkpoint.bin"
    content = os.urandom(12 * _MB)
    source.write_bytes(content)
    capture = Capture(artifact_dir=tmp_path / "artifacts" if folder else None)
    descriptions: list[dict[str, Any]] = []
    peak = _peak(lambda: descriptions.append(capture.file("checkpoint.bin", source)))
    assert peak < 4 * _MB  # a few chunks, not the 12 MB file
    description = descriptions[0]
    assert description["size"] == len(content)
    assert description["sha256"] == hashlib.sha256(content).hexdigest()
    if folder:
        assert (tmp_path / "artifacts" / "checkpoint.bin").read_bytes() == content


def test_a_large_array_is_serialised_once_while_written(tmp_path: Path) -> None:
    array = np.random.default_rng(0).random(4 * _MB)  # 32 MB
    capture = Capture(artifact_dir=tmp_path)
    descriptions: list[dict[str, Any]] = []
    peak = _peak(lambda: descriptions.append(capture.artifact("x.npy", array)))
    # The log's private read-only copy plus numpy's write buffer (at most 16 MB); serialising
    # into bytes for the digest and again for the file held two more copies.
    assert peak < array.nbytes + 18 * _MB
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    assert descriptions[0]["sha256"] == hashlib.sha256(buffer.getvalue()).hexdigest()
    assert descriptions[0]["size"] == len(buffer.getvalue())
    assert np.array_equal(np.load(tmp_path / "x.npy"), array)


def test_descriptions_match_the_bytes_written_for_every_kind(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a,b\n1,2\n")
    capture = Capture(artifact_dir=tmp_path / "out")
    objects: dict[str, Any] = {
        "raw.bin": b"\x00\xff",
        "notes.txt": "héllo ✓",
        "in.csv": source,
        "w.npy": np.arange(5.0),
        "cfg.pkl": {"lr": 0.1, "layers": [64, 64]},
    }
    for name, obj in objects.items():
        description = capture.artifact(name, obj)
        written = (tmp_path / "out" / name).read_bytes()
        assert description["size"] == len(written)
        assert description["sha256"] == hashlib.sha256(written).hexdigest()
    assert pickle.loads((tmp_path / "out" / "cfg.pkl").read_bytes()) == objects["cfg.pkl"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_a_file_written_into_the_artifact_folder_itself_can_be_captured(tmp_path: Path) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    plot = folder / "plot.png"  # saved straight where the artifact goes
    plot.write_bytes(b"\x89PNG")
    description = Capture(artifact_dir=folder).file("plot.png", plot)
    assert plot.read_bytes() == b"\x89PNG"
    assert description["sha256"] == hashlib.sha256(b"\x89PNG").hexdigest()
